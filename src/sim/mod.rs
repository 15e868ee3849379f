//! The simulated fleet: many Choria servers behind one NATS connection, with faults, splays
//! scaled in time, lifecycle events and request accounting; plus the embedded broker.
//!
//! | module | what it holds |
//! |---|---|
//! | `config` | [`SimConfig`]: size, seed, token, faults, timing |
//! | `simulator` | [`Simulator`]: start-up, the shared state, the public handle |
//! | `server` | the server loop: which nodes answer a request, and what |
//! | `request` | a request decoded, checked and its filter compiled once |
//! | [`verify`] | a secure server's checks of the caller, as go-choria's |
//! | `rejection` | why a server drops a request unanswered |
//! | `matcher` | server-side filter matching |
//! | [`compound`] | compound (`-S`) filter evaluation |
//! | [`node`] | one simulated server: identity, mode, state, fault |
//! | `facts` | a node's facts, classes and agents; fact comparison |
//! | `agents` | the agents a node runs and what they answer |
//! | [`daemon`] | a node's process: PID, start time, message counters (`daemon_stats`) |
//! | [`scout`] | the scout agent: per-node checks, maintenance, resume, trigger |
//! | `refusal` | why an agent answers an action with an error |
//! | `effect` | the state transitions after an action's splay |
//! | `stats` | [`SimStats`] and the answer on [`STATS_SUBJECT`] |
//! | [`twin`] | a twin of a real fleet: nodes from an inventory file |
//! | `tasks` | the owner that stops every background task when the simulator goes |
//! | [`provisioner`] | the simulated Choria Provisioner |
//! | [`broker`] | the embedded `nats-server` |

mod agents;
pub mod broker;
pub mod compound;
mod config;
pub mod daemon;
mod effect;
mod facts;
pub(crate) mod matcher;
pub mod node;
pub mod provisioner;
mod refusal;
mod rejection;
mod request;
pub mod scout;
mod server;
mod simulator;
mod stats;
mod tasks;
pub mod twin;
pub mod verify;

pub use config::SimConfig;
pub use simulator::Simulator;
pub use stats::{SimStats, STATS_SUBJECT};
pub use twin::Twin;

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
#[error("simulator: {0}")]
pub struct SimError(String);
