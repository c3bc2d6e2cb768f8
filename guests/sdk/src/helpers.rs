//! Typed helpers over the WIT records: JSON parsing into serde types and plan builders.

use serde::{Serialize, de::DeserializeOwned};

use crate::{
    Child, Condition, ConditionStatus, Decision, Event, EventType, Fact, Json, ObjectRef, Op, Plan,
    PluginError, PodDecoration, Snapshot, StatusUpdate, Step, TrafficShift,
};

/// Parses a JSON body into any serde type; a failure is [`PluginError::InvalidInput`] naming
/// the type.
pub fn parse<T: DeserializeOwned>(json: &str) -> Result<T, PluginError> {
    serde_json::from_str(json).map_err(|e| {
        PluginError::InvalidInput(format!("cannot parse {}: {e}", std::any::type_name::<T>()))
    })
}

/// Serialises a value to a JSON body; a failure is [`PluginError::Internal`].
pub fn to_json<T: Serialize>(value: &T) -> Result<Json, PluginError> {
    serde_json::to_string(value).map_err(|e| PluginError::Internal(format!("cannot serialise: {e}")))
}

/// Just enough of an object to tell its kind without parsing the rest into a full type.
#[derive(serde::Deserialize)]
struct KindOnly {
    #[serde(default)]
    kind: String,
}

impl Snapshot {
    /// The primary object, parsed.
    pub fn primary<T: DeserializeOwned>(&self) -> Result<T, PluginError> {
        parse(&self.primary)
    }

    /// The children of one kind (`"Pod"`, `"Service"`), parsed.
    pub fn children_of_kind<T: DeserializeOwned>(&self, kind: &str) -> Result<Vec<T>, PluginError> {
        let mut out = Vec::new();
        for child in &self.children {
            if parse::<KindOnly>(child)?.kind == kind {
                out.push(parse(child)?);
            }
        }
        Ok(out)
    }

    /// The fact with this key, if the host gathered one.
    pub fn fact(&self, key: &str) -> Option<&Fact> {
        self.facts.iter().find(|f| f.key == key)
    }
}

impl Default for Plan {
    fn default() -> Self {
        Plan { ops: Vec::new(), requeue_after_ms: None }
    }
}

impl Plan {
    /// An empty plan: nothing to do, no requeue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the host to build this child with its own builders and create it.
    pub fn render(mut self, child: Child) -> Self {
        self.ops.push(Op::Render(child));
        self
    }

    /// Adds a server-side apply of this JSON object.
    pub fn apply(mut self, object: Json) -> Self {
        self.ops.push(Op::Apply(object));
        self
    }

    /// Adds a server-side apply of this object, serialised.
    pub fn apply_object<T: Serialize>(self, object: &T) -> Result<Self, PluginError> {
        Ok(self.apply(to_json(object)?))
    }

    /// Adds a delete.
    pub fn delete(mut self, object: ObjectRef) -> Self {
        self.ops.push(Op::Delete(object));
        self
    }

    /// Adds a status update of the primary object.
    pub fn status(mut self, update: StatusUpdate) -> Self {
        self.ops.push(Op::Status(update));
        self
    }

    /// Adds an Event about the primary object.
    pub fn event(mut self, type_: EventType, reason: &str, message: &str) -> Self {
        self.ops.push(Op::Event(Event {
            type_,
            reason: reason.to_owned(),
            message: message.to_owned(),
            regarding: None,
        }));
        self
    }

    /// Asks the host to come back after `ms` milliseconds.
    pub fn requeue_after_ms(mut self, ms: u64) -> Self {
        self.requeue_after_ms = Some(ms);
        self
    }
}

impl ObjectRef {
    /// A reference to a namespaced object, with no UID precondition.
    pub fn namespaced(api_version: &str, kind: &str, namespace: &str, name: &str) -> Self {
        ObjectRef {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            namespace: Some(namespace.to_owned()),
            name: name.to_owned(),
            uid: None,
        }
    }
}

impl Condition {
    /// A condition with its four fields.
    pub fn new(type_: &str, status: ConditionStatus, reason: &str, message: &str) -> Self {
        Condition {
            type_: type_.to_owned(),
            status,
            reason: reason.to_owned(),
            message: message.to_owned(),
        }
    }
}

impl PodDecoration {
    /// Adds nothing to the Pod.
    pub fn none() -> Self {
        PodDecoration { labels: Vec::new(), annotations: Vec::new(), scheduler_name: None }
    }

    /// Sets the Pod's `schedulerName`.
    pub fn scheduler(name: &str) -> Self {
        PodDecoration { scheduler_name: Some(name.to_owned()), ..Self::none() }
    }

    /// Adds a label.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Adds an annotation.
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        self.annotations.push((key.to_owned(), value.to_owned()));
        self
    }
}

impl Decision {
    /// Wait, come back after `requeue_after_ms`.
    pub fn wait(reason: &str, requeue_after_ms: u64) -> Self {
        Decision { step: Step::Wait(reason.to_owned()), requeue_after_ms: Some(requeue_after_ms) }
    }

    /// Move traffic and capacity.
    pub fn shift(shift: TrafficShift) -> Self {
        Decision { step: Step::Shift(shift), requeue_after_ms: None }
    }

    /// The pending cluster becomes active.
    pub fn promote() -> Self {
        Decision { step: Step::Promote, requeue_after_ms: None }
    }

    /// Give up on the pending cluster.
    pub fn abort(reason: &str) -> Self {
        Decision { step: Step::Abort(reason.to_owned()), requeue_after_ms: None }
    }
}
