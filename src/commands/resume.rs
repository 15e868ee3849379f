//! `--resume ID` on `run` and `req`: read the run from the journal, refuse what cannot be
//! resumed, and merge the journaled `--arg` values with the ones given now. The replay itself
//! is [`crate::journal::replay`] (effects) and [`crate::rollout::resume`] (nodes).

use std::collections::BTreeMap;

use crate::error::Error;
use crate::fleet::Fleet;
use crate::journal::replay::{record, ResumeFlags, RunRecord};
use crate::journal::{read, RunId};

/// `--resume ID` and its flags, validated.
#[derive(Debug, Clone)]
pub(crate) struct ResumeOptions {
    pub id: RunId,
    pub flags: ResumeFlags,
}

/// Reads run `o.id` from the journal and checks that `command` may resume it.
pub(crate) async fn load(fleet: &Fleet, o: &ResumeOptions, command: &str) -> Result<RunRecord, Error> {
    let events = read::show(fleet, &o.id).await?;
    let Some(r) = record(o.id.as_str(), &events) else {
        return Err(Error::Usage {
            message: format!("--resume {}: no such run in the run journal on this broker (see `fleetbook runs`)", o.id),
        });
    };
    r.check_resumable(command, &o.flags).map_err(|message| Error::Usage { message })?;
    Ok(r)
}

/// Claims the next attempt of the run, so that two operators resuming it at once cannot both
/// go on: the second is refused. Returns the attempt number.
pub(crate) async fn claim(fleet: &Fleet, r: &RunRecord) -> Result<u32, Error> {
    let attempt = r.attempts + 1;
    let (user, host) = crate::journal::who();
    let id = RunId::parse(&r.run_id).map_err(|message| Error::Usage { message })?;
    match crate::journal::claim(fleet, &id, attempt, &format!("{user}@{host}"), r.last_claim).await? {
        true => Ok(attempt),
        false => Err(Error::Guardrail {
            reason: format!(
                "run {} is being resumed by someone else right now; see `fleetbook runs show {}`",
                r.run_id, r.run_id
            ),
        }),
    }
}

/// The `--arg` values of a resumed run: the journaled ones, with the secret ones given again
/// now. A value given now that differs from the journal's (or a new name) is refused unless
/// `--force`, so a resume cannot quietly change what the run does.
pub(crate) fn merge_args(
    r: &RunRecord,
    given: BTreeMap<String, String>,
    force: bool,
) -> Result<BTreeMap<String, String>, Error> {
    let mut out = given.clone();
    for (k, v) in &r.args {
        let was = v.as_str().unwrap_or_default();
        match given.get(k) {
            None if was == crate::redact::MASK => {
                return Err(Error::Usage {
                    message: format!(
                        "run {} was started with --arg {k}=… (a secret, not kept in the journal): give it again",
                        r.run_id
                    ),
                })
            }
            None => {
                out.insert(k.clone(), was.to_string());
            }
            Some(now) if was != crate::redact::MASK && now != was && !force => {
                return Err(Error::Guardrail {
                    reason: format!(
                        "--arg {k}={now} differs from run {}'s {k}={was}; --force resumes with the new value",
                        r.run_id
                    ),
                })
            }
            Some(_) => {}
        }
    }
    let new: Vec<&String> = given.keys().filter(|k| !r.args.contains_key(*k)).collect();
    if !new.is_empty() && !force {
        let names: Vec<String> = new.iter().map(|k| format!("--arg {k}")).collect();
        return Err(Error::Guardrail {
            reason: format!("{} not given to run {}; --force resumes with it", names.join(", "), r.run_id),
        });
    }
    Ok(out)
}

/// The line that tells an operator how to continue a run that stopped short.
pub(crate) fn hint(command: &str, id: &str) -> String {
    format!(
        "to continue it: fleetbook {command} --resume {id} (the same connection options; --arg values come from the journal, secret ones must be given again)"
    )
}

/// Refuses to resume a `req` run with another agent or action.
pub(crate) fn same_runbook(r: &RunRecord, runbook: &str) -> Result<(), Error> {
    if r.runbook == runbook {
        return Ok(());
    }
    Err(Error::Usage {
        message: format!(
            "run {} was `req {}`, not `req {}`",
            r.run_id,
            r.runbook.replace('#', " "),
            runbook.replace('#', " ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn run(args: Value) -> RunRecord {
        RunRecord { run_id: "ID".into(), args: args.as_object().cloned().unwrap_or_default(), ..Default::default() }
    }

    #[test]
    fn journaled_args_fill_in_secrets_must_be_given_and_changes_need_force() {
        let r = run(serde_json::json!({"batch": "5", "token": "[secret]"}));
        let given = |v: &[(&str, &str)]| v.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let err = merge_args(&r, given(&[]), false).unwrap_err().to_string();
        assert!(err.contains("--arg token") && err.contains("give it again"), "{err}");
        let m = merge_args(&r, given(&[("token", "t")]), false).unwrap();
        assert_eq!(m["batch"], "5");
        let changed = merge_args(&r, given(&[("token", "t"), ("batch", "9")]), false).unwrap_err();
        assert!(changed.to_string().contains("--force"), "{changed}");
        assert_eq!(merge_args(&r, given(&[("token", "t"), ("batch", "9")]), true).unwrap()["batch"], "9");
        assert!(merge_args(&r, given(&[("token", "t"), ("x", "1")]), false).is_err());
    }
}
