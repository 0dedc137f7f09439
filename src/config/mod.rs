//! The boot configuration served by netboot-configd: our GetConfig service
//! over RxRPC, the versioned JSON document, and its merge into the plan.
//!
//! - [`schema`]: the document types and their validation into [`Config`]
//!   (values checked by the command line's own per-field validators,
//!   `cmdline::keys`);
//! - [`merge`]: [`apply`] a [`Config`] to a `BootPlan`, explicit
//!   command-line fields winning ([`explicit_keys`]);
//! - [`proto`]: the `NETBOOT_CONFIG` Rx service (id, port, GetConfig XDR,
//!   abort codes), pure;
//! - [`fetch`]: the client, servers in turn over any `rxrpc::RxTransport`;
//! - [`store`]: configd's directory of documents;
//! - [`policy`]: configd's rxkad policy (who may fetch what, secrets only encrypted);
//! - `unique_keys`: the check that no object of a document repeats a key;
//! - [`user`]: configd's `--user`, the account and the privilege drop.
//!
//! `rxrpc` below is the transport only.

pub mod fetch;
pub mod merge;
pub mod policy;
pub mod proto;
pub mod schema;
pub mod store;
mod unique_keys;
pub mod user;

pub use fetch::{
    fetch_config, fetch_config_from, fetch_config_until, parse_config, server_label, AttemptError,
    FetchError, Fetched,
};
pub use merge::{apply, explicit_keys};
pub use proto::Identity;
pub use schema::{Config, ConfigError};
