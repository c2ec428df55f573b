//! The derived vocabulary of design.md §2: a device's service state and how an in-service
//! period moved it. Every list of states (fleet counts, metrics, filters) comes from here.

str_enum!(
    /// A device's service state at an instant.
    ServiceState {
        /// Its last service event says in service, and its source is not silent.
        InService => "in_service",
        /// Its last service event says out of service, and its source is not silent.
        OutOfService => "out_of_service",
        /// No service event yet, or the source that reported it has been silent for more
        /// than [`SILENCE_US`](crate::time::SILENCE_US).
        Unknown => "unknown",
    }
);

str_enum!(
    /// How an in-service interval moved the device.
    Movement {
        /// To a node other than the one before, not its home.
        Failover => "failover",
        /// Back to its home node from another node.
        Rehome => "rehome",
    }
);
