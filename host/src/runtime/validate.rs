//! Checks on what a guest returns, before the host acts on it.
//!
//! The WIT types already rule out structurally wrong answers; these checks catch the rest: JSON
//! that does not parse, objects without a kind or name, empty references and names.

use super::bindings::types::{Child, Condition, Decision, ObjectRef, Op, Plan, PodDecoration, Step};

/// The fields every object the host writes must carry.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectHead {
    api_version: String,
    kind: String,
    metadata: MetaHead,
}

#[derive(serde::Deserialize)]
struct MetaHead {
    name: Option<String>,
    #[serde(rename = "generateName")]
    generate_name: Option<String>,
}

/// A Kubernetes object as JSON: parses, and has apiVersion, kind and a name.
pub(crate) fn object(json: &str) -> Result<(), String> {
    let head: ObjectHead = serde_json::from_str(json).map_err(|e| format!("object is not valid JSON: {e}"))?;
    if head.api_version.is_empty() || head.kind.is_empty() {
        return Err("object has an empty apiVersion or kind".into());
    }
    let named = head.metadata.name.as_deref().is_some_and(|n| !n.is_empty())
        || head.metadata.generate_name.as_deref().is_some_and(|n| !n.is_empty());
    if !named {
        return Err(format!("{} has neither metadata.name nor metadata.generateName", head.kind));
    }
    Ok(())
}

pub(crate) fn object_ref(r: &ObjectRef) -> Result<(), String> {
    if r.api_version.is_empty() || r.kind.is_empty() || r.name.is_empty() {
        return Err(format!("incomplete object reference {}/{} {:?}", r.api_version, r.kind, r.name));
    }
    Ok(())
}

/// A child to render needs the parts of its name the host cannot make up.
fn render(child: &Child) -> Result<(), String> {
    let suffix_ok = |s: &str| !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    match child {
        Child::HeadPod(suffix) if !suffix_ok(suffix) => Err(format!("head pod suffix {suffix:?} is not 1-10 lowercase letters or digits")),
        Child::WorkerPod(pod) if pod.group.is_empty() => Err("worker pod without a group".into()),
        Child::WorkerPod(pod) if !suffix_ok(&pod.suffix) => {
            Err(format!("worker pod suffix {:?} is not 1-10 lowercase letters or digits", pod.suffix))
        }
        _ => Ok(()),
    }
}

fn condition(c: &Condition) -> Result<(), String> {
    if c.type_.is_empty() || c.reason.is_empty() {
        return Err("condition with an empty type or reason".into());
    }
    Ok(())
}

pub(crate) fn plan(plan: &Plan) -> Result<(), String> {
    for (i, op) in plan.ops.iter().enumerate() {
        let at = |e: String| format!("op {i}: {e}");
        match op {
            Op::Render(child) => render(child).map_err(at)?,
            Op::Apply(json) => object(json).map_err(at)?,
            Op::Delete(r) => object_ref(r).map_err(at)?,
            Op::Status(status) => {
                for c in &status.conditions {
                    condition(c).map_err(at)?;
                }
                if let Some(fields) = &status.fields {
                    match serde_json::from_str::<serde_json::Value>(fields) {
                        Ok(serde_json::Value::Object(_)) => {}
                        _ => return Err(at("status fields are not a JSON object".into())),
                    }
                }
            }
            Op::Event(event) => {
                if event.reason.is_empty() {
                    return Err(at("event with an empty reason".into()));
                }
                if let Some(r) = &event.regarding {
                    object_ref(r).map_err(at)?;
                }
            }
        }
    }
    Ok(())
}

pub(crate) fn decoration(d: &PodDecoration) -> Result<(), String> {
    if d.labels.iter().chain(&d.annotations).any(|(k, _)| k.is_empty()) {
        return Err("empty label or annotation key".into());
    }
    if d.scheduler_name.as_deref() == Some("") {
        return Err("empty schedulerName".into());
    }
    Ok(())
}

pub(crate) fn decision(d: &Decision) -> Result<(), String> {
    if let Step::Shift(shift) = &d.step {
        let over = |p: Option<u8>| p.is_some_and(|p| p > 100);
        if shift.pending_traffic_percent > 100
            || over(shift.pending_target_capacity)
            || over(shift.active_target_capacity)
        {
            return Err("a percentage above 100".into());
        }
    }
    Ok(())
}
