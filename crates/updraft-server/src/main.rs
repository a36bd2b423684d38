//! `updraft`: the command line (`serve`, `cert`, `migrate`), which starts the runtimes and runs the application until a signal.

use clap::Parser;
use updraft_server::config::{Cli, Command};
use updraft_server::{Application, runtimes, telemetry};

/// mimalloc for the whole process, SQLite's allocations included (the `override` feature): against glibc's malloc,
/// three of four list shapes took 16–33 % less CPU and an idle socket 15 % less memory (BENCHMARKS.md, "The
/// allocator"). Its arenas are committed as they are used (.cargo/config.toml).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let settings = (*args).resolve()?;
            let _logs = telemetry::init_logs(settings.json_logs);
            // Built by hand for its threads' priority; `build` runs here, on the main thread (see `runtimes`).
            runtimes::http_runtime(settings.api_nice, settings.api_slice)?.block_on(async {
                let app = Application::build(settings).await?;
                app.run_until_stopped(shutdown_signal()).await
            })
        }
        Command::Migrate(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let report = runtime.block_on(updraft_server::database::migrate(&args))?;
            println!("{report}");
            Ok(())
        }
        Command::Hook(args) => std::process::exit(updraft_runtime::hook::run_hook(&args.root, &args.app)),
        Command::Cert(args) => {
            let names = if args.names.is_empty() { vec!["localhost".into(), "127.0.0.1".into()] } else { args.names };
            let issued = updraft_server::cert::issue(&args.dir, &names)?;
            let ca = issued.ca.display();
            if issued.new_ca {
                println!("made a CA: {ca} (trust it once, e.g. NODE_EXTRA_CA_CERTS={ca})");
            }
            println!("certificate for {}:", names.join(", "));
            println!("  updraft serve --tls-cert {} --tls-key {}", issued.cert.display(), issued.key.display());
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => (),
        _ = term.recv() => (),
    }
    tracing::info!("shutting down");
}
