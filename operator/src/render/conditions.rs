//! Status conditions: Ready, Progressing, Degraded, how a new set merges
//! into the old one, and [`Problem`]: a spec that cannot work.

use crate::crd::Condition;

/// A condition with the current time (fixed by [`merge_conditions`] when
/// the status did not change).
pub fn condition(type_: &str, status: bool, reason: &str, message: impl Into<String>) -> Condition {
    Condition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        last_transition_time: now(),
        observed_generation: None,
    }
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The new conditions, stamped with `generation`; each keeps its old
/// `lastTransitionTime` when its status did not change, so that writing the
/// same status twice changes nothing (and does not wake the controller).
pub fn merge_conditions(
    old: &[Condition],
    new: Vec<Condition>,
    generation: Option<i64>,
) -> Vec<Condition> {
    new.into_iter()
        .map(|mut c| {
            c.observed_generation = generation;
            if let Some(prev) = old.iter().find(|o| o.type_ == c.type_)
                && prev.status == c.status
            {
                c.last_transition_time = prev.last_transition_time.clone();
            }
            c
        })
        .collect()
}

/// Degraded false (`AsExpected`), or true with `reason` and the notes of
/// what could not be done as the spec says.
pub fn degraded_unless_empty(notes: &[String], reason: &str) -> Condition {
    if notes.is_empty() {
        condition(
            "Degraded",
            false,
            "AsExpected",
            "every object is as the spec says",
        )
    } else {
        condition("Degraded", true, reason, notes.join("; "))
    }
}

/// A spec that cannot work: the reason and message shown in status and in a
/// Warning event until it is fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
}

impl Problem {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Problem {
            reason,
            message: message.into(),
        }
    }

    /// The API server refused an object rendered from the spec (a 400 or
    /// 422): retrying cannot help, the spec must change.
    pub fn apply_rejected(api_message: &str) -> Self {
        Problem::new(
            "ApplyRejected",
            format!("the API server rejected an object rendered from this spec: {api_message}"),
        )
    }

    /// Whether `conditions` already report this problem (so no new event).
    pub fn already_reported(&self, conditions: &[Condition]) -> bool {
        conditions
            .iter()
            .find(|c| c.type_ == "Degraded")
            .is_some_and(|c| {
                c.status == "True" && c.reason == self.reason && c.message == self.message
            })
    }

    /// Ready and Progressing false, Degraded true, all with this reason.
    pub fn conditions(&self) -> Vec<Condition> {
        vec![
            condition("Ready", false, self.reason, self.message.clone()),
            condition(
                "Progressing",
                false,
                self.reason,
                "waiting for the spec to be fixed",
            ),
            condition("Degraded", true, self.reason, self.message.clone()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_kept_while_status_holds() {
        let mut old = condition("Ready", false, "PodsNotReady", "0 of 1");
        old.last_transition_time = "2020-01-01T00:00:00Z".into();
        let merged = merge_conditions(
            std::slice::from_ref(&old),
            vec![condition("Ready", false, "PodsNotReady", "0 of 2")],
            Some(3),
        );
        assert_eq!(merged[0].last_transition_time, "2020-01-01T00:00:00Z");
        assert_eq!(merged[0].observed_generation, Some(3));
        assert_eq!(merged[0].message, "0 of 2");
        let merged = merge_conditions(
            &[old],
            vec![condition("Ready", true, "Available", "")],
            None,
        );
        assert_ne!(merged[0].last_transition_time, "2020-01-01T00:00:00Z");
    }

    #[test]
    fn degraded_only_with_notes() {
        let c = degraded_unless_empty(&[], "PartiallyApplied");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "AsExpected")
        );
        let notes = ["a".to_string(), "b".to_string()];
        let c = degraded_unless_empty(&notes, "PartiallyApplied");
        assert_eq!(c.status, "True");
        assert_eq!(c.reason, "PartiallyApplied");
        assert_eq!(c.message, "a; b");
        let p = Problem::apply_rejected("spec.x: Invalid value");
        assert_eq!(p.reason, "ApplyRejected");
        assert!(
            p.message.ends_with(": spec.x: Invalid value"),
            "{}",
            p.message
        );
    }

    #[test]
    fn a_problem_is_reported_once() {
        let p = Problem {
            reason: "SecretNotFound",
            message: "secret x is missing".into(),
        };
        let conditions = p.conditions();
        assert_eq!(conditions.len(), 3);
        assert!(p.already_reported(&conditions));
        let other = Problem {
            reason: "SecretNotFound",
            message: "secret y is missing".into(),
        };
        assert!(!other.already_reported(&conditions));
        assert!(!p.already_reported(&[]));
    }
}
