//! What the REST API tells the notification side: a thing of a tenant was created,
//! updated or deleted. The REST handlers publish a [`Change`] after the store has it and
//! before they answer, so a notification never announces something unsaved.

use futures_util::future::BoxFuture;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ManagedObject,
    Measurement,
    Event,
    Alarm,
    Operation,
}

impl Kind {
    /// The channel segment of the real-time endpoint (`/measurements/<id>`…).
    pub fn channel_segment(self) -> &'static str {
        match self {
            Kind::ManagedObject => "managedobjects",
            Kind::Measurement => "measurements",
            Kind::Event => "events",
            Kind::Alarm => "alarms",
            Kind::Operation => "operations",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Delete,
}

impl Action {
    /// `realtimeAction` as Cumulocity clients expect it.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "CREATE",
            Action::Update => "UPDATE",
            Action::Delete => "DELETE",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub tenant: String,
    pub kind: Kind,
    pub action: Action,
    /// The managed object the change is about: the source of a measurement, event or
    /// alarm; the device of an operation; the object itself.
    pub source: String,
    /// The thing as the REST API returns it (for a delete: `{"id": ...}`).
    pub data: Value,
}

/// Where changes go. Publishing records the notification durably before it returns
/// (sessions that survive a restart replay it); failures are logged by the
/// implementation, since the change itself is already stored.
pub trait Notify: Send + Sync + 'static {
    fn publish(&self, change: Change) -> BoxFuture<'_, ()>;
}
