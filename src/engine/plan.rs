//! Cutting a file into parts, from the backend's rules and the configured size.

use crate::backend::{Capabilities, PartSizeRule, Session, part_range};

use super::EngineSettings;

/// The part size to use for a file of `size` bytes.
pub fn part_size(
    caps: &Capabilities,
    configured: u64,
    size: u64,
    session: Option<&Session>,
) -> Result<u64, String> {
    match caps.part_size {
        PartSizeRule::SetByServer => match session.and_then(|s| s.part_size) {
            Some(n) if n > 0 => Ok(n),
            _ => Err("the service did not say which part size to use".into()),
        },
        PartSizeRule::Chosen { min, max } => {
            let mut ps = configured.clamp(min, max);
            if let Some(most) = caps.max_parts {
                // Grow the parts rather than exceed the service's part count.
                let needed = size.div_ceil(u64::from(most.max(1)));
                if needed > ps {
                    ps = needed;
                }
                if ps > max {
                    return Err(format!(
                        "{size} bytes need more than {most} parts of at most {max} bytes"
                    ));
                }
            }
            Ok(ps.max(1))
        }
    }
}

/// A warning when a part sent at the bandwidth limit would outlast the longest
/// request the service allows (Insights Hub's gateway gives up after 60 s): every
/// such part would fail, be retried and fail again. The limit is shared, so a part
/// gets its share when every worker has every part in flight.
pub fn deadline_warning(caps: &Capabilities, s: &EngineSettings) -> Option<String> {
    let deadline = caps.request_deadline?;
    let bps = s.bandwidth_limit?;
    let in_flight = if caps.parallel_parts {
        s.parts_in_flight
    } else {
        1
    };
    let sharing = (s.workers * in_flight).max(1) as u64;
    let part = match caps.part_size {
        PartSizeRule::Chosen { min, max } => s.part_size.clamp(min, max),
        PartSizeRule::SetByServer => return None,
    };
    let secs = part as f64 * sharing as f64 / bps as f64;
    (secs > deadline.as_secs_f64()).then(|| {
        format!(
            "a part of {part} bytes takes {secs:.0} s at an equal share of upload.bandwidth_limit \
             ({bps} B/s over {sharing} parts in flight), longer than the {} s the service \
             allows one request: lower upload.part_size, upload.parts_in_flight or \
             upload.workers, or raise upload.bandwidth_limit",
            deadline.as_secs()
        )
    })
}

/// `(offset, length)` of each part; an empty file has none.
pub fn cut(size: u64, part_size: u64) -> Vec<(u64, u64)> {
    (0..)
        .map_while(|i| part_range(size, part_size, i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Addressing;

    fn caps(rule: PartSizeRule, max_parts: Option<u32>) -> Capabilities {
        Capabilities {
            addressing: Addressing::ByteOffset,
            part_size: rule,
            max_parts,
            parallel_parts: true,
            lists_held_parts: false,
            part_digest: None,
            object_digest: None,
            single_request_below: 0,
            last_part_on_complete: false,
            ranged_reads: false,
            request_deadline: None,
            asynchronous_join: false,
            object_digest_from_parts: false,
        }
    }

    #[test]
    fn the_memory_budget_is_one_files_parts_whatever_the_workers() {
        let settings = |upload: &str| {
            let text = format!(
                "[watch]\npath = \"/tmp/outbox\"\n[backend]\ntype = \"local\"\npath = \"/tmp/remote\"\n[upload]\n{upload}\n"
            );
            let cfg = crate::config::parse(std::path::Path::new("t.toml"), &text).expect("config");
            EngineSettings::from_config(&cfg)
        };
        let any = caps(
            PartSizeRule::Chosen {
                min: 1,
                max: 1 << 30,
            },
            None,
        );
        let two = settings("workers = 2\nparts_in_flight = 4\npart_size = \"8MiB\"");
        let eight = settings("workers = 8\nparts_in_flight = 4\npart_size = \"8MiB\"");
        assert_eq!(two.memory_budget(&any), 32 << 20);
        assert_eq!(
            eight.memory_budget(&any),
            32 << 20,
            "shared, not per worker"
        );
        // Within the backend's bounds: 1 MiB asked, 5 MiB the least it takes.
        let small = settings("parts_in_flight = 4\npart_size = \"1MiB\"");
        let at_least_5 = caps(
            PartSizeRule::Chosen {
                min: 5 << 20,
                max: 1 << 30,
            },
            None,
        );
        assert_eq!(small.memory_budget(&at_least_5), 20 << 20);
        assert_eq!(
            small.memory_budget(&caps(PartSizeRule::SetByServer, None)),
            4 << 20
        );
        // One part sent while the next is read, at least.
        let one = settings("parts_in_flight = 1\npart_size = \"8MiB\"");
        assert_eq!(one.memory_budget(&any), 16 << 20);
    }

    #[test]
    fn cuts_cover_the_file_exactly() {
        assert_eq!(cut(0, 4), vec![]);
        assert_eq!(cut(1, 4), vec![(0, 1)]);
        assert_eq!(cut(4, 4), vec![(0, 4)]);
        assert_eq!(cut(5, 4), vec![(0, 4), (4, 1)]);
        assert_eq!(cut(12, 4), vec![(0, 4), (4, 4), (8, 4)]);
    }

    #[test]
    fn chosen_size_is_clamped_and_grows_for_max_parts() {
        let c = caps(
            PartSizeRule::Chosen {
                min: 5 << 20,
                max: 1 << 30,
            },
            Some(1000),
        );
        assert_eq!(part_size(&c, 1 << 20, 10, None), Ok(5 << 20));
        assert_eq!(
            part_size(&c, 8 << 20, 100 << 30, None),
            Ok((100u64 << 30).div_ceil(1000))
        );
        assert!(part_size(&c, 8 << 20, 2 << 40, None).is_err());
    }

    #[test]
    fn server_size_comes_from_the_session() {
        let c = caps(PartSizeRule::SetByServer, None);
        let s = Session {
            id: "x".into(),
            part_size: Some(8 << 20),
            extra: serde_json::Value::Null,
        };
        assert_eq!(part_size(&c, 1, 1, Some(&s)), Ok(8 << 20));
        assert!(part_size(&c, 1, 1, None).is_err());
    }
}
