//! End-to-end test support: the real `yanshou` binary and simulated devices over real HTTP.
//!
//! - [`server`]: find the binary ([`yanshou_bin`]), start `yanshou serve` on a fresh SQLite file
//!   or PostgreSQL schema ([`Server`], [`Backend`]), create users through its command line; the
//!   process is killed and its database removed on drop.
//! - [`device`]: [`SimDevice`], a phone running the `sync-protocol` client ([`sync_protocol::Replica`])
//!   with a bad network: lost requests, lost responses, duplicated requests, offline periods,
//!   restarts from the persisted replica, expired access tokens (refreshed on 401).
//! - [`check`]: invariants over the change feed and device states (no acknowledged op lost, one
//!   change per op, signatures freeze, no value silently dropped).
//!
//! Build the server binary before running these tests on their own:
//! `cargo build -p yanshou-server --bin yanshou` (`cargo test --workspace` builds it).

pub mod check;
pub mod device;
pub mod server;

pub use device::{DeviceStats, Fault, FaultPlan, Round, SimDevice};
pub use server::{Backend, PASSWORD, Server, ServerOptions, yanshou_bin};
