//! RxRPC, the transport only (DESIGN.md §1 "[config fetch]"); it knows no
//! service and nothing of the boot plan. Our GetConfig service, its client
//! and configd's store live in `crate::config`.
//!
//! - [`wire`]: packet codec, pure (rxrpc.md §1).
//! - [`call`]: sans-IO client call (retransmission, reassembly).
//! - [`server`]: sans-IO server endpoint (connections, BUSY, VERSION).
//! - [`udp`]: userspace transport and server loop over UDP sockets.
//! - [`kernel`]: the kernel's AF_RXRPC as a transport (the agent's first
//!   choice; rxrpc.md §2.6).
//!
//! Clients call through [`RxTransport`]: the kernel's
//! [`kernel::KernelTransport`], or the userspace [`udp::UdpTransport`]
//! where AF_RXRPC is missing (rxrpc.md §2.7).

pub mod call;
pub mod kernel;
pub mod server;
pub mod udp;
pub mod wire;

pub use call::CallError;

use std::net::SocketAddr;
use std::time::Duration;

/// One Rx call to a peer: send `request` (opcode + XDR args) to
/// `service_id`, return the reply bytes or why there are none. Both the
/// userspace client and the kernel AF_RXRPC client implement it.
pub trait RxTransport {
    fn call(
        &mut self,
        peer: SocketAddr,
        service_id: u16,
        request: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, CallError>;
}
