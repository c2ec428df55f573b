//! A device's state at an instant (design.md §5 device state), from its intervals and
//! call legs.

use serde::Serialize;

use callstate_schemas::{ServiceState, Us};

use super::fleet::{DeviceHistory, Fleet};
use super::intervals::ServiceInterval;
use super::name::Name;
use super::ser;
use crate::error::Result;
use crate::exec::Cancel;

/// One device's state at an instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceState {
    /// Device.
    pub device: String,
    /// The instant asked about.
    #[serde(serialize_with = "ser::instant")]
    pub at: Us,
    /// Its service state then.
    pub state: ServiceState,
    /// Node handling it (in service).
    pub node: Option<String>,
    /// Home node.
    pub home_node: Option<String>,
    /// node == home (in service).
    pub on_home_node: Option<bool>,
    /// Since when it is in this state.
    #[serde(serialize_with = "ser::opt_instant")]
    pub since: Option<Us>,
    /// Device type.
    pub device_type: Option<String>,
    /// Device pool.
    pub device_pool: Option<String>,
    /// Cluster.
    pub cluster: String,
    /// Node it was last in service on.
    pub last_node: Option<String>,
    /// Cause of an outage.
    pub cause: Option<String>,
    /// Call legs active on the device at that instant; `None` when retention removed call
    /// legs of that time.
    pub active_calls: Option<u64>,
}

/// One device's state at `t` from its history and the number of its call legs active then
/// (`None`: not known).
pub fn state_at(dev: &DeviceHistory<'_>, active_calls: Option<u64>, t: Us) -> DeviceState {
    // the last interval starting by t (else the first): the device's attributes; the piece
    // holding t, if any: its state
    let last = dev.attributes_at(t);
    let cur = dev.piece_at(&last, t);
    let cur = cur.as_ref();
    let o = |v: &Option<Name>| v.map(|n| n.to_string());
    DeviceState {
        device: last.device.to_string(),
        at: t,
        state: cur.map_or(ServiceState::Unknown, |i| i.state),
        node: cur.and_then(|i| o(&i.node)),
        home_node: o(&last.home_node),
        on_home_node: cur.and_then(ServiceInterval::on_home_node),
        since: cur.map(|i| i.valid_from),
        device_type: o(&last.device_type),
        device_pool: o(&last.device_pool),
        cluster: last.cluster.to_string(),
        last_node: cur.and_then(|i| o(&i.last_node)),
        cause: cur.and_then(|i| o(&i.cause)),
        active_calls,
    }
}

/// Every device's state at `t` (devices with a service history; `unknown` where no state
/// holds), by device.
pub fn states_at(fleet: &dyn Fleet, t: Us, cancel: &Cancel) -> Result<Vec<DeviceState>> {
    fleet.intervals_known(t)?;
    let mut out = Vec::new();
    let known = fleet.calls_known_at(t);
    for (n, (dev, calls)) in fleet.devices_with_active_calls(t).enumerate() {
        if n % 1024 == 0 {
            cancel.check()?;
        }
        out.push(state_at(&dev, known.then_some(calls), t));
    }
    Ok(out)
}
