//! Checks a CronJob schedule the way Kubernetes parses it (standard 5-field
//! cron or a descriptor), so a bad schedule becomes a status message instead
//! of an apply error.

const DESCRIPTORS: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// `Ok(())` when Kubernetes would accept `schedule`; otherwise why not.
pub fn validate(schedule: &str) -> Result<(), String> {
    let s = schedule.trim();
    if s.is_empty() {
        return Err("the schedule is empty".into());
    }
    if s.starts_with("TZ=") || s.starts_with("CRON_TZ=") {
        return Err("time zones in the schedule are not supported by CronJobs".into());
    }
    if s.starts_with('@') {
        return if DESCRIPTORS.contains(&s) {
            Ok(())
        } else {
            Err(format!(
                "unknown descriptor {s:?} (use one of {})",
                DESCRIPTORS.join(", ")
            ))
        };
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
            fields.len()
        ));
    }
    let specs: [(&str, u32, u32, &[&str], u32); 5] = [
        ("minute", 0, 59, &[], 0),
        ("hour", 0, 23, &[], 0),
        ("day of month", 1, 31, &[], 0),
        ("month", 1, 12, MONTHS, 1),
        ("day of week", 0, 6, DAYS, 0),
    ];
    for (field, (what, min, max, names, name_base)) in fields.iter().zip(specs) {
        check_field(field, min, max, names, name_base)
            .map_err(|e| format!("{what} field {field:?}: {e}"))?;
    }
    Ok(())
}

fn check_field(field: &str, min: u32, max: u32, names: &[&str], base: u32) -> Result<(), String> {
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        if let Some(step) = step {
            let n: u32 = step
                .parse()
                .map_err(|_| format!("step {step:?} is not a number"))?;
            if n == 0 {
                return Err("step must be positive".into());
            }
        }
        if range == "*" || range == "?" {
            continue;
        }
        let (lo, hi) = match range.split_once('-') {
            Some((a, b)) => (value(a, names, base)?, value(b, names, base)?),
            None => {
                let v = value(range, names, base)?;
                (v, v)
            }
        };
        for v in [lo, hi] {
            if v < min || v > max {
                return Err(format!("{v} is outside {min}-{max}"));
            }
        }
        if lo > hi {
            return Err(format!("range {lo}-{hi} is reversed"));
        }
    }
    Ok(())
}

fn value(s: &str, names: &[&str], base: u32) -> Result<u32, String> {
    if let Ok(n) = s.parse::<u32>() {
        return Ok(n);
    }
    names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(s))
        .map(|i| i as u32 + base)
        .ok_or_else(|| format!("{s:?} is not a number"))
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn accepts_what_cronjobs_accept() {
        for s in [
            "17 3 * * *",
            "*/5 * * * *",
            "0 0 1,15 * MON-FRI",
            "0 12 * JAN-MAR sun",
            "@daily",
            "0-30/10 1-5 ? * *",
        ] {
            assert_eq!(validate(s), Ok(()), "{s}");
        }
    }

    #[test]
    fn rejects_with_a_reason() {
        for (s, want) in [
            ("", "empty"),
            ("* * * *", "expected 5 fields"),
            ("60 * * * *", "minute field"),
            ("* 24 * * *", "hour field"),
            ("* * 0 * *", "day of month"),
            ("* * * 13 *", "month"),
            ("* * * * 7", "day of week"),
            ("*/0 * * * *", "step must be positive"),
            ("@sometimes", "unknown descriptor"),
            ("5-1 * * * *", "reversed"),
            ("TZ=UTC 0 * * * *", "time zones"),
            ("x * * * *", "not a number"),
        ] {
            let err = validate(s).expect_err(s);
            assert!(err.contains(want), "{s:?}: {err}");
        }
    }
}
