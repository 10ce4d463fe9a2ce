//! The peers (family `peer`): existing libraries (iceoryx2, ipc-channel,
//! zenoh) a user would otherwise
//! pick, measured in the same harness as ipclab's own mechanisms (same
//! processes, pinning, sizes, payload written on send and checked on
//! receive). Behind the `peers` feature, which the `ipclab` binary turns
//! on: a user of `ipclab-bench` alone does not compile them.

pub(crate) mod iceoryx2;
mod iox2_end;
mod ipc_channel;
mod zenoh;
mod zenoh_end;

pub static IPC_CHANNEL: ipc_channel::IpcChannel = ipc_channel::IpcChannel;
pub static IPC_CHANNEL_SHM: ipc_channel::IpcChannelShm = ipc_channel::IpcChannelShm;
pub static ICEORYX2: iceoryx2::Iceoryx2 = iceoryx2::Iceoryx2 { event: false };
pub static ICEORYX2_EVENT: iceoryx2::Iceoryx2 = iceoryx2::Iceoryx2 { event: true };
pub static ZENOH: zenoh::Zenoh = zenoh::Zenoh { shm: true };
pub static ZENOH_TCP: zenoh::Zenoh = zenoh::Zenoh { shm: false };
