//! The SyncScheduler's tick: pick due tasks fairly, lease them, enqueue one
//! job each, and flag tasks that stopped running.
//!
//! # Idempotence
//!
//! A tick may run twice (timer retries, two instances during a scale-out). The
//! lease token is derived from the task's version and generation
//! (`v<version>-g<generation>`, [`SyncTask::lease_token`]) and the message id
//! from the token, so two ticks racing on one task compute the same
//! lease: one wins the compare-and-swap, and Service Bus duplicate detection
//! drops any second send.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::Serialize;

use crate::clock::{Clock, Timestamp};
use crate::events::{Event, EventSink};
use crate::model::{Direction, JobReason, Lease, Priority, SyncJob, SyncTask};
use crate::queue::{OutboundMessage, QueueError, QueueName, QueueSender};
use crate::store::{LeaseRequest, Store, StoreError};

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// How many due tasks to look at per tick.
    pub scan_limit: usize,
    /// How many jobs to enqueue per tick at most.
    pub max_per_tick: usize,
    /// How long a lease lasts before the watchdog may re-queue the task.
    pub lease_for: Duration,
}

/// Jobs per queue send (a Service Bus batch is split by size below this):
/// large enough to amortise each commit, small enough that a refused send
/// gives back little.
pub const SEND_CHUNK: usize = 500;

impl Default for SchedulerConfig {
    /// Sized for 100,000 tasks at hourly intervals (about 1,700 due a minute,
    /// 33,000 after an outage): a tick leases and enqueues 50,000 in about a
    /// second on the embedded store (BENCHMARKS.md, "Scheduler at scale").
    fn default() -> Self {
        SchedulerConfig {
            scan_limit: 50_000,
            max_per_tick: 50_000,
            lease_for: Duration::from_secs(15 * 60),
        }
    }
}

/// Orders due tasks for dispatch: priority classes strictly in order
/// (interactive, webhook follow-up, scheduled, backfill); inside a class,
/// tenants take turns (round-robin by tenant, each tenant's tasks in due
/// order), so one tenant with many tasks cannot starve the others. Returns at
/// most `capacity` tasks. Pure.
pub fn plan(mut due: Vec<SyncTask>, capacity: usize) -> Vec<SyncTask> {
    due.sort_by(|a, b| (a.priority, a.next_run_at, &a.id).cmp(&(b.priority, b.next_run_at, &b.id)));
    let mut out = Vec::with_capacity(capacity.min(due.len()));
    let mut by_class: BTreeMap<Priority, BTreeMap<String, VecDeque<SyncTask>>> = BTreeMap::new();
    let mut tenant_order: BTreeMap<Priority, Vec<String>> = BTreeMap::new();
    for t in due {
        let tenants = by_class.entry(t.priority).or_default();
        let key = t.tenant.to_string();
        if !tenants.contains_key(&key) {
            tenant_order
                .entry(t.priority)
                .or_default()
                .push(key.clone());
        }
        tenants.entry(key).or_default().push_back(t);
    }
    for (class, mut tenants) in by_class {
        let order = &tenant_order[&class];
        loop {
            let mut progressed = false;
            for tenant in order {
                if out.len() >= capacity {
                    return out;
                }
                if let Some(t) = tenants.get_mut(tenant).and_then(VecDeque::pop_front) {
                    out.push(t);
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
    }
    out
}

/// Whether the watchdog should flag `t` at `now`: it has not finished a run
/// within twice its interval (measured from its last run, or from when it first
/// became due if it never ran).
pub fn is_stalled(t: &SyncTask, now: Timestamp) -> bool {
    t.stall_at().is_some_and(|at| now > at)
}

/// What a tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TickReport {
    /// Jobs enqueued.
    pub enqueued: usize,
    /// Of those, tasks whose previous lease had expired (re-queued by the watchdog).
    pub requeued_expired: usize,
    /// Tasks another scheduler leased first.
    pub lost_races: usize,
    /// Tasks newly flagged as stalled.
    pub stalled: Vec<String>,
    /// Pending pushes sent again by the outbox relay (a push whose first
    /// enqueue was lost to a crash, or whose backoff has passed).
    pub pushes_requeued: usize,
}

/// Why a tick failed (the host's timer retry policy takes it from there).
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The queue failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// One scheduler tick: lease the due inbound tasks in fair order, enqueue
/// one job each, flag stalled tasks, relay due pushes.
pub async fn tick(
    store: &dyn Store,
    queue: &dyn QueueSender,
    clock: &dyn Clock,
    events: &dyn EventSink,
    cfg: &SchedulerConfig,
) -> Result<TickReport, TickError> {
    let now = clock.now();
    let mut report = TickReport::default();
    let mut due = store.due_tasks(now, cfg.scan_limit).await?;
    // Pushes are driven by the outbox (below), not by a schedule.
    due.retain(|t| t.direction == Direction::Inbound);
    let planned = plan(due, cfg.max_per_tick);
    lease_and_enqueue(store, queue, planned, now, cfg, &mut report).await?;
    report.stalled = watchdog(store, events, now, cfg.scan_limit).await?;
    report.pushes_requeued =
        crate::pipeline::outbound::requeue_due_pushes(store, queue, now, cfg.scan_limit).await?;
    Ok(report)
}

/// A task this tick leased, with the lease it took.
struct Leased {
    task: SyncTask,
    lease: Lease,
}

/// Leases the whole plan in one store call, then sends one job per leased
/// task in plan order, in chunks of [`SEND_CHUNK`], handed to the queue in
/// one call ([`QueueSender::send_chunks`]: the local queue commits them in
/// one transaction). One lease transaction, not one per chunk: the plan
/// visits the task table in tenant order, so every chunk's commit would
/// rewrite most of the table's pages again (measured: chunked, pipelined
/// leases cost the 33,000-task tick of `bench-scheduler` about 75% more
/// CPU). When the queue refuses a chunk, that chunk's tasks and every later
/// one are given back (the next tick retries them instead of waiting for
/// the leases to expire) and the tick fails.
async fn lease_and_enqueue(
    store: &dyn Store,
    queue: &dyn QueueSender,
    planned: Vec<SyncTask>,
    now: Timestamp,
    cfg: &SchedulerConfig,
    report: &mut TickReport,
) -> Result<(), TickError> {
    let (leased, lost) = lease_chunk(store, planned, now, cfg).await?;
    report.lost_races += lost;
    if leased.is_empty() {
        return Ok(());
    }
    let chunks = leased
        .chunks(SEND_CHUNK)
        .map(|chunk| chunk.iter().map(job_message).collect())
        .collect();
    if let Err(e) = queue.send_chunks(chunks).await {
        let sent = (e.sent * SEND_CHUNK).min(leased.len());
        count_sent(&leased[..sent], report);
        for l in &leased[sent..] {
            give_back(store, l, now).await?;
        }
        return Err(e.error.into());
    }
    count_sent(&leased, report);
    Ok(())
}

fn count_sent(sent: &[Leased], report: &mut TickReport) {
    report.enqueued += sent.len();
    report.requeued_expired += sent.iter().filter(|l| l.task.lease.is_some()).count();
}

/// Leases tasks in one store call; returns what was leased and how many
/// tasks another scheduler got first.
async fn lease_chunk(
    store: &dyn Store,
    chunk: Vec<SyncTask>,
    now: Timestamp,
    cfg: &SchedulerConfig,
) -> Result<(Vec<Leased>, usize), StoreError> {
    if chunk.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let requests: Vec<LeaseRequest> = chunk
        .into_iter()
        .map(|task| LeaseRequest {
            lease: Lease {
                token: task.lease_token(),
                until: now.add(cfg.lease_for),
            },
            task,
        })
        .collect();
    let taken = store.lease_tasks(&requests).await?;
    let total = requests.len();
    let leased: Vec<Leased> = requests
        .into_iter()
        .zip(taken)
        .filter(|(_, ok)| *ok)
        .map(|(r, _)| Leased {
            task: r.task,
            lease: r.lease,
        })
        .collect();
    let lost = total - leased.len();
    Ok((leased, lost))
}

/// The job message for a leased task.
fn job_message(l: &Leased) -> OutboundMessage {
    let job = SyncJob {
        task: l.task.id.clone(),
        connection: l.task.connection.clone(),
        object: l.task.object.clone(),
        priority: l.task.priority,
        reason: JobReason::Scheduled,
        lease_token: l.lease.token.clone(),
    };
    let mut msg = OutboundMessage::json(QueueName::inbound(), job.message_id(), &job);
    msg.properties
        .insert("priority".into(), l.task.priority.as_str().into());
    msg.properties
        .insert("tenant".into(), l.task.tenant.to_string());
    msg
}

/// Undoes a lease whose job was not sent, keeping the task's due time and
/// any priority boost the lease used up.
async fn give_back(store: &dyn Store, l: &Leased, now: Timestamp) -> Result<(), StoreError> {
    let t = &l.task;
    store
        .release_task(
            &t.id,
            &l.lease.token,
            t.next_run_at,
            t.last_run_at.unwrap_or(now),
        )
        .await?;
    if t.priority < Priority::Scheduled {
        store.request_run(&t.id, t.priority, t.next_run_at).await?;
    }
    Ok(())
}

/// Flags the tasks past their stall deadline (an indexed read of just
/// those), once each, with an event; returns their ids.
async fn watchdog(
    store: &dyn Store,
    events: &dyn EventSink,
    now: Timestamp,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    let mut flagged = Vec::new();
    for t in store.stall_candidates(now, limit).await? {
        // The store's deadline column is derived from the task on every
        // write; the pure rule stays the authority.
        if !is_stalled(&t, now) {
            continue;
        }
        store.set_task_stalled(&t.id, true).await?;
        tracing::warn!(task = %t.id, interval_secs = t.interval_secs, "task has not run within twice its interval");
        events
            .emit(Event::TaskStalled {
                tenant: t.tenant.clone(),
                connection: t.connection.clone(),
                task: t.id.clone(),
                last_run_at: t.last_run_at,
                interval_secs: t.interval_secs,
            })
            .await;
        flagged.push(t.id.to_string());
    }
    Ok(flagged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ConnectionId, ObjectType, TaskId, TenantId};
    use proptest::prelude::*;

    fn t(tenant: &str, n: u32, p: Priority, due: i64) -> SyncTask {
        SyncTask {
            id: TaskId::parse(format!("{tenant}-{n}")).unwrap(),
            tenant: TenantId::parse(tenant).unwrap(),
            connection: ConnectionId::parse(format!("{tenant}-c")).unwrap(),
            object: ObjectType::parse("contacts").unwrap(),
            direction: Direction::Inbound,
            priority: p,
            interval_secs: 60,
            next_run_at: Timestamp::from_millis(due),
            cursor: None,
            lease: None,
            last_run_at: None,
            stalled: false,
            version: 0,
            generation: 0,
        }
    }

    fn ids(v: &[SyncTask]) -> Vec<&str> {
        v.iter().map(|t| t.id.as_str()).collect()
    }

    /// Classes go strictly in order; tenants alternate inside a class; capacity cuts the tail.
    #[test]
    fn plan_table() {
        let due = vec![
            t("a", 1, Priority::Scheduled, 1),
            t("a", 2, Priority::Scheduled, 2),
            t("a", 3, Priority::Scheduled, 3),
            t("b", 1, Priority::Scheduled, 5),
            t("c", 1, Priority::Backfill, 0),
            t("c", 2, Priority::Interactive, 9),
            t("b", 2, Priority::WebhookFollowUp, 7),
        ];
        assert_eq!(
            ids(&plan(due.clone(), 10)),
            ["c-2", "b-2", "a-1", "b-1", "a-2", "a-3", "c-1"]
        );
        assert_eq!(ids(&plan(due, 3)), ["c-2", "b-2", "a-1"]);
        assert!(plan(vec![], 5).is_empty());
    }

    /// The watchdog flags a task only past twice its interval.
    #[test]
    fn stalled_table() {
        let mut task = t("a", 1, Priority::Scheduled, 0);
        task.last_run_at = Some(Timestamp::from_millis(0));
        assert!(!is_stalled(&task, Timestamp::from_millis(120_000)));
        assert!(is_stalled(&task, Timestamp::from_millis(120_001)));
    }

    proptest! {
        /// The plan is a prefix-respecting selection: nothing invented, nothing duplicated,
        /// sorted by class, and within a class no tenant gets a second turn before every
        /// waiting tenant got one.
        #[test]
        fn plan_is_fair(spec in proptest::collection::vec((0u8..4, 0u8..3, 0i64..100), 0..40), cap in 0usize..50) {
            let due: Vec<SyncTask> = spec.iter().enumerate()
                .map(|(i, (p, ten, d))| t(&format!("t{ten}"), i as u32, Priority::ALL[*p as usize], *d)).collect();
            let out = plan(due.clone(), cap);
            prop_assert_eq!(out.len(), cap.min(due.len()));
            let mut seen = std::collections::HashSet::new();
            for w in out.windows(2) { prop_assert!(w[0].priority <= w[1].priority); }
            for x in &out { prop_assert!(seen.insert(x.id.clone())); }
            for class in Priority::ALL {
                let picked: Vec<_> = out.iter().filter(|x| x.priority == class).collect();
                let waiting: std::collections::BTreeSet<_> = due.iter().filter(|x| x.priority == class).map(|x| x.tenant.clone()).collect();
                let first_round = picked.len().min(waiting.len());
                let firsts: std::collections::BTreeSet<_> = picked.iter().take(first_round).map(|x| x.tenant.clone()).collect();
                prop_assert_eq!(firsts.len(), first_round, "first round gives each tenant one turn");
            }
        }
    }
}
