//! The `fleetbook` binary: build the runtime, run, turn the outcome into an exit code.

fn main() {
    fleetbook::memory::no_transparent_huge_pages();
    let cli = fleetbook::cli::Cli::from_args();
    // `req` against a broker runs on one thread: the main thread reads the connection,
    // discovers and opens the replies; the rollout has a blocking thread of its own, which
    // publishes and sorts. A worker thread besides the main one only handed every chunk of
    // replies, and discovery's, from thread to thread: 94.1 -> 86.9 ms of CPU at 10,000 nodes
    // over 20 interleaved pairs, the same wall time (issue 15). An embedded fleet (`--sim`)
    // keeps the workers: the simulator answers on them.
    let one_thread = matches!(cli.command, fleetbook::cli::Command::Req(_))
        && cli.connect.sim.is_none()
        && cli.connect.sim_from.is_none();
    let mut builder = match one_thread {
        true => tokio::runtime::Builder::new_current_thread(),
        false => tokio::runtime::Builder::new_multi_thread(),
    };
    // `sim` chooses its threads (`--threads`, 1 unless told): it answers on one task, and on
    // one thread its replies go out in fewer, larger writes (issue 15).
    if let fleetbook::cli::Command::Sim { threads, .. } = &cli.command {
        builder.worker_threads(usize::from(*threads));
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fleetbook: cannot start the async runtime: {e}");
            std::process::exit(fleetbook::error::exit::FAILED);
        }
    };
    let interrupt = fleetbook::interrupt::Interrupt::new();
    let on_signal = interrupt.clone();
    let on_term = interrupt.clone();
    let code = runtime.block_on(async move {
        tokio::spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                match on_signal.press() {
                    // The REPL cancels the call at once; the call's own message says what stopped.
                    _ if on_signal.immediate() => {}
                    1 => eprintln!("\ninterrupted: {}", on_signal.first_press_message()),
                    _ => eprintln!("\naborting now"),
                }
            }
        });
        // SIGTERM and SIGHUP (CI cancelling a job, `timeout`, a closed terminal) abort like a
        // double Ctrl-C: waits end, what happened is printed, `run_end` is written and the
        // embedded broker and its store are cleaned up. A second one exits at once.
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut hup)) = (signal(SignalKind::terminate()), signal(SignalKind::hangup())) else {
                return;
            };
            let mut seen = 0;
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = hup.recv() => {}
                }
                seen += 1;
                if seen > 1 {
                    std::process::exit(fleetbook::error::exit::GUARDRAIL);
                }
                eprintln!("\nterminated: aborting now");
                on_term.abort_now();
            }
        });
        match fleetbook::commands::run(cli, interrupt).await {
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
    exit_now(code)
}

/// Ends the process once everything of ours is dropped and the output flushed, without the C
/// library's exit handlers: mimalloc's hands every freed page back to the kernel one range
/// at a time, which the kernel then does again for the whole process (perf: about 5% of
/// `req`'s CPU at 10,000 nodes, issue 15). Nothing else of ours registers one.
fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: _exit takes a plain integer and never returns; every destructor that matters
    // has run (the runtime, and with it the tasks, the broker guard and temporary files).
    unsafe { libc::_exit(code) }
}

// The RPC path allocates per reply (JSON layers, base64); mimalloc measurably beats glibc
// malloc there (see docs/testing.md, benchmark).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
