//! One gateway's listener over NATS: it holds the node's subscriptions to that gateway's routes
//! (`nats_routes.rs`), several at once, and delivers what they hear to the node's sockets in the stream's order,
//! each message once.
//!
//! Each subscription has its own channel in the client, so reading them one after another could reorder them,
//! and a message read after a later-numbered one would be dropped as heard already. The client hands out what
//! the server sends in the order it arrives, without waiting, so once a message is in one channel every message
//! numbered before it (the stream republishes in order) is already in its own. The listener therefore takes
//! everything buffered on all the gateway's subscriptions ([`Subscriptions::drain`]) and delivers it sorted.

use std::future::poll_fn;
use std::task::Poll;

use async_nats::{Message, Subscriber};
use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::nats_journal::{CatchUp, number};
use crate::nats_routes::Route;
use crate::registry::Node;
use crate::wire;

/// A change to a listener's subscriptions, from [`crate::nats_interest::Interest`].
pub(crate) enum Change {
    /// A subscription the server confirmed: to one route, or (`None`) to the whole gateway, which replaces the
    /// others.
    Add(Option<Route>, Subscriber),
    /// No socket here wants the route any more.
    Drop(Route),
}

/// A gateway's subscriptions, each with its route (`None`: the whole gateway).
pub(crate) struct Subscriptions(Vec<(Option<Route>, Subscriber)>);

impl Subscriptions {
    pub(crate) fn new(first: Vec<(Option<Route>, Subscriber)>) -> Subscriptions {
        Subscriptions(first)
    }

    /// The next message on any subscription; `None` once the client is gone.
    async fn next(&mut self) -> Option<Message> {
        poll_fn(|cx| {
            for (_, subscriber) in &mut self.0 {
                if let Poll::Ready(message) = subscriber.poll_next_unpin(cx) {
                    return Poll::Ready(message);
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Adds what every subscription has buffered to `batch`.
    fn drain(&mut self, batch: &mut Vec<Message>) {
        for (_, subscriber) in &mut self.0 {
            take_buffered(subscriber, batch);
        }
    }

    /// Applies `change`; what a dropped subscription had buffered goes into `batch`.
    fn apply(&mut self, change: Change, batch: &mut Vec<Message>) {
        let dropped: Vec<(Option<Route>, Subscriber)> = match change {
            Change::Add(None, whole) => {
                let dropped = std::mem::take(&mut self.0);
                self.0.push((None, whole));
                dropped
            }
            Change::Add(route, subscriber) => {
                self.0.push((route, subscriber));
                Vec::new()
            }
            Change::Drop(route) => {
                let (dropped, kept) =
                    std::mem::take(&mut self.0).into_iter().partition(|(r, _)| r.as_ref() == Some(&route));
                self.0 = kept;
                dropped
            }
        };
        for (_, mut subscriber) in dropped {
            take_buffered(&mut subscriber, batch);
            // Dropping a subscriber unsubscribes it.
        }
    }

    /// Applies the changes waiting on `control`; answers whether there were any.
    fn apply_waiting(&mut self, control: &mut mpsc::UnboundedReceiver<Change>, batch: &mut Vec<Message>) -> bool {
        let mut any = false;
        while let Ok(change) = control.try_recv() {
            self.apply(change, batch);
            any = true;
        }
        any
    }
}

/// Adds what `subscriber` has buffered to `batch`. The client's channels count against tokio's cooperative budget,
/// which could answer "nothing" while messages wait: callers run this unconstrained (`tokio::task::unconstrained`).
fn take_buffered(subscriber: &mut Subscriber, batch: &mut Vec<Message>) {
    while let Some(Some(message)) = subscriber.next().now_or_never() {
        batch.push(message);
    }
}

/// Delivers what `gateway`'s subscriptions hear until `stop`, then unsubscribes; after a reconnect, what was
/// missed first.
pub(crate) async fn listen(
    mut subscriptions: Subscriptions,
    mut control: mpsc::UnboundedReceiver<Change>,
    (gateway, local): (String, Node),
    mut catch_up: CatchUp,
    stop: CancellationToken,
) {
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            change = control.recv() => match change {
                Some(change) => tokio::task::unconstrained(async { subscriptions.apply(change, &mut batch) }).await,
                None => return,
            },
            () = catch_up.reconnected() => {
                catch_up.catch_up(&gateway, &local).await;
                continue;
            }
            message = subscriptions.next() => match message {
                Some(message) => batch.push(message),
                None => return,
            },
        }
        // A subscription the interest confirmed before a message in the batch was sent holds whatever it heard
        // before that message: take the waiting changes in until none is left after a drain.
        // Unconstrained: see [`Subscriptions::drain`]. Only the drain: delivering yields as any task does.
        tokio::task::unconstrained(async {
            loop {
                subscriptions.drain(&mut batch);
                if !subscriptions.apply_waiting(&mut control, &mut batch) {
                    break;
                }
            }
        })
        .await;
        // A message heard after a reconnect that was not seen yet comes after what was missed.
        catch_up.catch_up(&gateway, &local).await;
        batch.sort_by_key(number);
        for message in batch.drain(..) {
            let seq = number(&message);
            // Also drops a message heard on two subscriptions (while the whole gateway replaces its routes).
            if !catch_up.fresh(seq) {
                continue;
            }
            if let Err(err) = wire::receive(&local, &gateway, &message.payload, seq).await {
                tracing::warn!(%err, subject = %message.subject, "a bus message is not a publication");
            }
        }
    }
}
