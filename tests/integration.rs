//! The integration suite: one binary, real nats-server per test, real Choria data files.

mod support;

mod cli;
mod election;
mod events;
mod filters_sim;
mod metrics;
mod protocol;
mod repl;
mod runbook;
mod security;
mod simulator;
