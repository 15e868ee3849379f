//! The `fleetbook` binary: build the runtime, run, turn the outcome into an exit code.

use clap::Parser;

fn main() {
    let cli = fleetbook::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fleetbook: cannot start the async runtime: {e}");
            std::process::exit(fleetbook::error::exit::FAILED);
        }
    };
    let interrupt = fleetbook::interrupt::Interrupt::new();
    let on_signal = interrupt.clone();
    let code = runtime.block_on(async move {
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                match on_signal.press() {
                    1 => eprintln!(
                        "\ninterrupted: stopping at the next safe point, after the current batch (Ctrl-C again to abort now)"
                    ),
                    _ => eprintln!("\naborting now"),
                }
            }
        });
        match fleetbook::run(cli, interrupt).await {
            Ok(()) => fleetbook::error::exit::OK,
            Err(fleetbook::error::Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                fleetbook::error::exit::OK
            }
            // Runbook errors come rendered with their location already.
            Err(e @ fleetbook::error::Error::Runbook { .. }) => {
                eprintln!("{e}");
                e.exit_code()
            }
            Err(e) => {
                eprintln!("fleetbook: {e}");
                e.exit_code()
            }
        }
    });
    // Drop the runtime (and with it the embedded broker guard) before exiting.
    drop(runtime);
    std::process::exit(code);
}

// The RPC path allocates per reply (JSON layers, base64); mimalloc measurably beats glibc
// malloc there (see docs/testing.md, benchmark).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
