//! The integration suite: one binary, real nats-server per test, real Choria data files.

mod support;

mod cli;
mod creds;
mod discovery_sources;
mod edges;
mod election;
mod events;
mod faults;
mod filters_sim;
mod fuzz;
mod governor;
mod help;
mod journal;
mod metrics;
mod protocol;
mod redaction;
mod repl;
mod reporting;
mod resume;
mod runbook;
mod security;
mod sim_strict;
mod sim_tokens;
mod simulator;
mod topology;
mod twin;
