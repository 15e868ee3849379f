//! The run's controls: `confirm`, `abort`, `sleep`, `dry_run`, `arg`, `secret` and the
//! `Secret` type they hand out.

use std::sync::Arc;

use rhai::{Dynamic, Engine, FuncRegistration};

use super::{runtime_error, Host, Res};
use crate::engine::options::duration;
use crate::progress::RunEvent;
use crate::prompt::Answer;
use crate::redact::{is_secret_name, Secret};

/// Registers the `Secret` type and the control functions.
pub(crate) fn register(engine: &mut Engine, host: &Arc<Host>) {
    engine.register_type_with_name::<Secret>("Secret");
    engine.register_fn("to_string", |s: &mut Secret| s.to_string());
    engine.register_fn("to_debug", |s: &mut Secret| format!("{s:?}"));

    let h = host.clone();
    FuncRegistration::new("confirm")
        .with_params_info(["message: &str", "bool"])
        .with_comments(["/// Asks a human to confirm. Returns true when confirmed (or with --yes); a refusal, or no\n/// terminal to ask on, stops the run with exit code 3."])
        .register_into_engine(engine, move |message: &str| confirm(&h, message));

    let h = host.clone();
    FuncRegistration::new("abort")
        .with_params_info(["reason: &str"])
        .with_comments(["/// Stops the run now with exit code 3. `try/catch` cannot catch it."])
        .register_into_engine(engine, move |reason: &str| -> Res<()> { Err(h.guardrail(format!("abort: {reason}"))) });

    // Rhai's own `sleep(INT)` and `sleep(FLOAT)` block the thread, ignore Ctrl-C and panic on
    // huge values; typed overloads registered here take precedence over them.
    let doc = "/// Waits for a duration (\"2s\", \"500ms\" or seconds, at most a year). Ctrl-C ends the wait and stops the run.";
    let h = host.clone();
    FuncRegistration::new("sleep")
        .with_params_info(["duration: Dynamic"])
        .with_comments([doc])
        .register_into_engine(engine, move |d: Dynamic| sleep(&h, &d));
    let h = host.clone();
    FuncRegistration::new("sleep")
        .with_params_info(["seconds: INT"])
        .with_comments([doc])
        .register_into_engine(engine, move |d: rhai::INT| sleep(&h, &Dynamic::from(d)));
    let h = host.clone();
    FuncRegistration::new("sleep")
        .with_params_info(["seconds: FLOAT"])
        .with_comments([doc])
        .register_into_engine(engine, move |d: rhai::FLOAT| sleep(&h, &Dynamic::from(d)));

    let h = host.clone();
    FuncRegistration::new("dry_run")
        .with_params_info(["bool"])
        .with_comments([
            "/// True under --dry-run: discovery and read-only actions run, everything else is only planned.",
        ])
        .register_into_engine(engine, move || h.settings.dry_run);

    let h = host.clone();
    FuncRegistration::new("arg")
        .with_params_info(["name: &str", "default: Dynamic", "Dynamic"])
        .with_comments(["/// The value of `--arg name=value`, converted to the type of `default` (int, float, bool or\n/// string); `default` when not given. Secret names (token, password, secret, key, ...) give a\n/// Secret, which never prints, logs or serialises in clear. `fleetbook run` refuses an\n/// `--arg` the runbook never reads with arg(\"name\")."])
        .register_into_engine(engine, move |name: &str, default: Dynamic| arg(&h, name, Some(default)));
    let h = host.clone();
    FuncRegistration::new("arg")
        .with_params_info(["name: &str", "String"])
        .with_comments([
            "/// The value of `--arg name=value`; an error when it was not given. Secret names give a Secret.",
        ])
        .register_into_engine(engine, move |name: &str| arg(&h, name, None));

    let h = host.clone();
    FuncRegistration::new("secret")
        .with_params_info(["env_name: &str", "Secret"])
        .with_comments(["/// A secret read from the environment variable `env_name`. It never prints, logs or\n/// serialises in clear; only the request sent to the nodes carries its value."])
        .register_into_engine(engine, move |env: &str| secret(&h, env));
}

/// `sleep(duration)`: waits, ending early (and stopping the run) on Ctrl-C.
fn sleep(h: &Host, d: &Dynamic) -> Res<()> {
    let d = duration(d, "sleep")?;
    let ms = d.as_millis() as u64;
    // Resuming: a sleep an earlier attempt slept through is not slept again.
    if h.replaying(|r| r.next_sleep()) == Some(true) {
        h.reporter.emit(RunEvent::Slept { ms, resumed: true });
        return Ok(());
    }
    let interrupted = h.rt.block_on(async {
        let soft = h.interrupt.soft();
        tokio::select! {
            _ = soft.cancelled() => true,
            _ = tokio::time::sleep(d) => false,
        }
    });
    if interrupted {
        return Err(h.guardrail("interrupted (Ctrl-C)"));
    }
    h.reporter.emit(RunEvent::Slept { ms, resumed: false });
    Ok(())
}

/// Confirmation: `--yes` answers, else the terminal, else the run stops.
fn confirm(host: &Host, message: &str) -> Res<bool> {
    let confirmed = |by: &str| {
        host.reporter.emit(RunEvent::Confirmed { question: message.to_string(), by: by.to_string() });
        Ok(true)
    };
    // Resuming: a question an earlier attempt had confirmed is not asked again.
    if host.replaying(|r| r.next_confirm()) == Some(true) {
        host.reporter.say(&format!("confirmed earlier in this run (journal): {message}"));
        return confirmed("journal");
    }
    if host.settings.yes {
        host.reporter.say(&format!("confirmed by --yes: {message}"));
        return confirmed("--yes");
    }
    let answer = host.reporter.suspend(|| host.prompter.ask(&format!("{message} [y/N]")));
    match Answer::from_reply(answer.as_deref(), &host.interrupt) {
        Answer::Yes => confirmed("operator"),
        Answer::Interrupted => Err(host.guardrail(format!("interrupted (Ctrl-C) at: {message}"))),
        Answer::No => Err(host.guardrail(format!("not confirmed: {message}"))),
        Answer::NoTerminal => {
            Err(host.guardrail(format!("cannot ask for confirmation (no terminal); pass --yes to confirm: {message}")))
        }
    }
}

fn arg(host: &Host, name: &str, default: Option<Dynamic>) -> Res<Dynamic> {
    let Some(raw) = host.settings.args.get(name).or_else(|| host.settings.arg_defaults.get(name)) else {
        return default.ok_or_else(|| runtime_error("invalid", format!("missing --arg {name}=VALUE")));
    };
    // A secret-named argument (token, password, ...) is a Secret from the start, so it is
    // masked wherever the runbook sends it; only the wire sees the value.
    if is_secret_name(name) {
        return Ok(Dynamic::from(Secret::new(name, raw)));
    }
    let bad = |t: &str| runtime_error("invalid", format!("--arg {name}={raw}: expected {t}"));
    Ok(match default {
        Some(d) if d.is_int() => Dynamic::from(raw.trim().parse::<rhai::INT>().map_err(|_| bad("an integer"))?),
        Some(d) if d.is_float() => Dynamic::from(raw.trim().parse::<rhai::FLOAT>().map_err(|_| bad("a number"))?),
        Some(d) if d.is_bool() => Dynamic::from(match raw.trim() {
            "true" | "yes" | "1" => true,
            "false" | "no" | "0" => false,
            _ => return Err(bad("true or false")),
        }),
        _ => Dynamic::from(raw.clone()),
    })
}

fn secret(host: &Host, env: &str) -> Res<Secret> {
    let value =
        std::env::var(env).ok().filter(|v| !v.is_empty()).or_else(|| host.settings.secret_defaults.get(env).cloned());
    match value {
        Some(v) if !v.is_empty() => Ok(Secret::new(env, &v)),
        // A dry run sends nothing mutating: the plan can be made without the secret.
        _ if host.settings.dry_run => {
            host.reporter.say(&format!(
                "dry-run: secret {env} is not set; fine for a plan (the calls that need it are only planned), the real run needs it"
            ));
            Ok(Secret::missing(env))
        }
        _ => Err(runtime_error("invalid", format!("secret: environment variable {env} is not set or empty"))),
    }
}
