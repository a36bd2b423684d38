-- Streams and sockets follow their user (`updraft-api` `eds/sessions.rs`): a token revoked or a group joined or
-- left, on any node, must reach the node that holds the user's sockets. These triggers send
-- `NOTIFY updraft_standing, '<backend> <user>'` at the commit of each such change; every node's follower relays it.
CREATE FUNCTION updraft_token_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.subject LIKE 'user:%' OR OLD.subject LIKE 'refresh:%' THEN
        PERFORM pg_notify('updraft_standing', split_part(OLD.subject, ':', 2) || ' ' || split_part(OLD.subject, ':', 3));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tokens_standing AFTER DELETE ON tokens
    FOR EACH ROW EXECUTE FUNCTION updraft_token_gone();

CREATE FUNCTION updraft_membership_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    row members;
BEGIN
    IF TG_OP = 'DELETE' THEN row := OLD; ELSE row := NEW; END IF;
    PERFORM pg_notify('updraft_standing', row.backend || ' ' || row.user_id);
    RETURN NULL;
END
$$;

CREATE TRIGGER members_standing AFTER INSERT OR DELETE ON members
    FOR EACH ROW EXECUTE FUNCTION updraft_membership_changed();
