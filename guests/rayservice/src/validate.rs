//! KubeRay's reconcile-time RayService validation (§4.1), each failure with its Event reason; wasmray adds the strategy options annotation.

use wasmray_api::serve::{NEW_CLUSTER_WITH_INCREMENTAL_UPGRADE, UpgradeOptions};

use crate::Ctx;
use crate::vocab::{annotations, events};

/// A rule the RayService breaks: the Event reason and the message.
pub type Invalid = (&'static str, String);

/// The first rule the RayService breaks, metadata first, then spec.
pub fn check(ctx: &Ctx) -> Result<(), Invalid> {
    metadata(ctx).map_err(|m| (events::INVALID_METADATA, m))?;
    spec(ctx).map_err(|m| (events::INVALID_SPEC, m))
}

fn metadata(ctx: &Ctx) -> Result<(), String> {
    let name = ctx.name;
    // Clusters are `<name>-<5 random>`, and a RayCluster's name may be 53 characters long.
    if name.len() > 47 {
        return Err(format!("RayService name should be no more than 47 characters, got {}", name.len()));
    }
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        return Err(format!("RayService name {name:?} should be a valid DNS-1035 label"));
    }
    if let Some(text) = ctx.annotation(annotations::INITIALIZING_TIMEOUT) {
        match parse_duration_ms(text) {
            Some(ms) if ms > 0 => {}
            _ => {
                return Err(format!(
                    "annotation {}: {text:?} is not a positive duration (like 30m) or number of seconds",
                    annotations::INITIALIZING_TIMEOUT
                ));
            }
        }
    }
    UpgradeOptions::of(ctx.service.metadata.annotations.as_ref())?;
    Ok(())
}

fn spec(ctx: &Ctx) -> Result<(), String> {
    let spec = &ctx.service.spec;
    let cluster = &spec.ray_cluster_config;
    let head_containers = cluster.head_group_spec.template.spec.as_ref().map_or(0, |s| s.containers.len());
    if head_containers == 0 {
        return Err("rayClusterConfig.headGroupSpec.template.spec.containers must not be empty".into());
    }
    let custom_head = cluster.head_group_spec.head_service.as_ref().and_then(|s| s.metadata.name.as_deref());
    if custom_head.is_some_and(|n| !n.is_empty()) {
        return Err("spec.rayClusterConfig.headGroupSpec.headService.metadata.name should not be set".into());
    }
    if spec.ray_cluster_deletion_delay_seconds.is_some_and(|d| d < 0) {
        return Err(format!(
            "spec.rayClusterDeletionDelaySeconds should be a non-negative integer, got {}",
            spec.ray_cluster_deletion_delay_seconds.unwrap_or_default()
        ));
    }
    let strategy = spec.upgrade_strategy.as_ref();
    if strategy.and_then(|s| s.type_.as_deref()) == Some(NEW_CLUSTER_WITH_INCREMENTAL_UPGRADE) {
        if cluster.enable_in_tree_autoscaling != Some(true) {
            return Err("Ray Autoscaler is required for NewClusterWithIncrementalUpgrade".into());
        }
        let Some(options) = strategy.and_then(|s| s.cluster_upgrade_options.as_ref()) else {
            return Err("ClusterUpgradeOptions are required for NewClusterWithIncrementalUpgrade".into());
        };
        if let Some(surge) = options.max_surge_percent.filter(|s| !(0..=100).contains(s)) {
            return Err(format!("maxSurgePercent must be between 0 and 100, got {surge}"));
        }
        if !(0..=100).contains(&options.step_size_percent) {
            return Err(format!("stepSizePercent must be between 0 and 100, got {}", options.step_size_percent));
        }
        if options.interval_seconds <= 0 {
            return Err(format!("intervalSeconds must be greater than 0, got {}", options.interval_seconds));
        }
        if options.gateway_class_name.is_empty() {
            return Err("gatewayClassName is required for NewClusterWithIncrementalUpgrade".into());
        }
    }
    Ok(())
}

/// A Go duration (`1h30m`, `90s`, `1.5h`, `500ms`) or a plain number of seconds, in milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<i64>() {
        return seconds.checked_mul(1000);
    }
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit_ms = match &rest[..unit_end] {
            "ns" => 1e-6,
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += number * unit_ms;
    }
    (total.is_finite() && total < 9e15).then_some(total as i64)
}
