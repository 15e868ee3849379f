//! The integration suite: one binary, real nats-server per test, real Choria data files.

mod support;

mod cli;
mod events;
mod protocol;
mod runbook;
mod simulator;
