//! `tcp` across hosts: the server's half listens on the address the
//! control connection came in on and accepts only the client host; the
//! client's half connects to it. The same frames as on loopback
//! (`TCP_NODELAY`, length-prefixed).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;

use super::inet::{accept_from, dial_tcp, listener, reach_addr};
use super::tcp::Tcp;
use super::unix_stream::framed_socket;
use crate::transport::{ChannelConfig, CrossHost, Endpoint, Half};

impl CrossHost for Tcp {
    fn listen(
        &self,
        local: IpAddr,
        peer: IpAddr,
        _: &ChannelConfig,
    ) -> io::Result<(Box<dyn Half>, serde_json::Value)> {
        let (listener, addr) = listener(local)?;
        let reach = serde_json::json!({ "address": addr.to_string() });
        Ok((Box::new(Accepting { listener, peer }), reach))
    }

    fn dial(&self, reach: &serde_json::Value, _: &ChannelConfig) -> io::Result<Box<dyn Half>> {
        Ok(Box::new(Dialing(reach_addr(reach, "address")?)))
    }
}

struct Accepting {
    listener: OwnedFd,
    peer: IpAddr,
}

impl Half for Accepting {
    fn open(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        Ok(Box::new(framed_socket(accept_from(
            &self.listener,
            self.peer,
        )?)?))
    }
}

struct Dialing(SocketAddr);

impl Half for Dialing {
    fn open(self: Box<Self>) -> io::Result<Box<dyn Endpoint>> {
        Ok(Box::new(framed_socket(dial_tcp(self.0)?)?))
    }
}
