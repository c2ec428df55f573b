//! The simulated estate: clusters, nodes (each with a CTIManager), sites, device pools with
//! their CUCM groups, and devices with lines and remote destinations.

use callstate_schemas::DeviceType;
use serde::Serialize;

use crate::rng::Rng;
use crate::scenario::TopologySpec;

/// A cluster.
#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    /// Cluster id (`CL1`).
    pub name: String,
    /// Its nodes (indices into [`Topology::nodes`]), in order.
    pub nodes: Vec<usize>,
    /// JTAPI bridge source observing it.
    pub bridge: String,
    /// Syslog/alarm collector source reporting node events.
    pub syslog: String,
    /// Operator source for maintenance windows.
    pub ops: String,
    /// The provider's primary and backup CTIManager (node indices).
    pub ctimanagers: [usize; 2],
}

/// A CUCM node; its CTIManager has the same name.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// Node name (`CL1-cucm2`).
    pub name: String,
    /// Cluster index.
    pub cluster: usize,
}

/// A device pool and its CUCM group.
#[derive(Debug, Clone, Serialize)]
pub struct Pool {
    /// Pool name (`CL1-DP-S1-03`).
    pub name: String,
    /// Cluster index.
    pub cluster: usize,
    /// Site name.
    pub site: String,
    /// CUCM group in priority order (node indices); the first is home.
    pub group: Vec<usize>,
}

/// A device.
#[derive(Debug, Clone, Serialize)]
pub struct Device {
    /// Device name.
    pub name: String,
    /// Type.
    #[serde(serialize_with = "ser_type")]
    pub device_type: DeviceType,
    /// Cluster index.
    pub cluster: usize,
    /// Pool index.
    pub pool: usize,
    /// Lines (directory numbers).
    pub lines: Vec<String>,
    /// Remote destinations (CTI Remote Devices only).
    pub remote_destinations: Vec<String>,
}

fn ser_type<S: serde::Serializer>(t: &DeviceType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(t.as_str())
}

/// The whole estate.
#[derive(Debug, Clone, Serialize)]
pub struct Topology {
    /// Clusters.
    pub clusters: Vec<Cluster>,
    /// Nodes of every cluster.
    pub nodes: Vec<Node>,
    /// Pools of every cluster.
    pub pools: Vec<Pool>,
    /// Devices of every cluster.
    pub devices: Vec<Device>,
}

impl Topology {
    /// Builds the estate of a spec; device types are placed by the seed.
    pub fn generate(spec: &TopologySpec, rng: &mut Rng) -> Topology {
        let mut t = Topology {
            clusters: Vec::new(),
            nodes: Vec::new(),
            pools: Vec::new(),
            devices: Vec::new(),
        };
        let mut dn = 100_000u64;
        for c in 0..spec.clusters {
            let cname = format!("CL{}", c + 1);
            let first_node = t.nodes.len();
            for n in 0..spec.nodes {
                t.nodes.push(Node {
                    name: format!("{cname}-cucm{}", n + 1),
                    cluster: c,
                });
            }
            let nodes: Vec<usize> = (first_node..t.nodes.len()).collect();
            let first_pool = t.pools.len();
            for p in 0..spec.pools {
                let site = p % spec.sites;
                let group = (0..spec.nodes.min(3))
                    .map(|k| nodes[(p + k) % nodes.len()])
                    .collect();
                t.pools.push(Pool {
                    name: format!("{cname}-DP-S{}-{:02}", site + 1, p + 1),
                    cluster: c,
                    site: format!("{cname}-S{}", site + 1),
                    group,
                });
            }
            for d in 0..spec.devices {
                let u = rng.unit();
                let device_type = if u < spec.cti_ports {
                    DeviceType::CtiPort
                } else if u < spec.cti_ports + spec.cti_route_points {
                    DeviceType::CtiRoutePoint
                } else if u < spec.cti_ports + spec.cti_route_points + spec.cti_remote_devices {
                    DeviceType::CtiRemoteDevice
                } else {
                    DeviceType::Phone
                };
                let name = match device_type {
                    DeviceType::Phone => format!("SEP{:04X}{:08X}", c + 1, d),
                    DeviceType::CtiPort => format!("CTIP-{cname}-{d:06}"),
                    DeviceType::CtiRoutePoint => format!("CTIRP-{cname}-{d:06}"),
                    _ => format!("CTIRD-{cname}-{d:06}"),
                };
                let lines = if device_type == DeviceType::Phone && rng.chance(0.3) {
                    2
                } else {
                    1
                };
                let lines = (0..lines)
                    .map(|_| {
                        dn += 1;
                        format!("{dn}")
                    })
                    .collect();
                let remote_destinations = if device_type == DeviceType::CtiRemoteDevice {
                    vec![format!("+1555{:07}", d)]
                } else {
                    Vec::new()
                };
                t.devices.push(Device {
                    name,
                    device_type,
                    cluster: c,
                    pool: first_pool + rng.index(spec.pools),
                    lines,
                    remote_destinations,
                });
            }
            let backup = nodes.get(1).copied().unwrap_or(nodes[0]);
            t.clusters.push(Cluster {
                name: cname.clone(),
                nodes,
                bridge: format!("jtapi-bridge-{}", cname.to_lowercase()),
                syslog: format!("syslog-{}", cname.to_lowercase()),
                ops: "operator".into(),
                ctimanagers: [first_node, backup],
            });
        }
        t
    }

    /// Index of a node by name.
    pub fn node(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// Index of a cluster by name; `None` means the first.
    pub fn cluster(&self, name: Option<&str>) -> Option<usize> {
        match name {
            None => Some(0),
            Some(n) => self.clusters.iter().position(|c| c.name == n),
        }
    }

    /// Home node of a device.
    pub fn home(&self, device: usize) -> usize {
        self.pools[self.devices[device].pool].group[0]
    }
}
