//! Workload W1 (perf.md §1): sync, groups and members, steady, list, micro, delete.
//! Every response status is checked; the member counts, list completeness and
//! 404-after-delete checks are recorded as checks (a failed check counts as an error).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::client::{enc, for_duration, mix, parallel, round3, Client, Rng, Stats};
use crate::cpu::ServerCpu;

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[derive(Debug, Clone)]
pub struct Params {
    pub users: usize,
    pub groups: usize,
    pub group_size: usize,
    pub big_group: usize,
    pub batch: usize,
    pub concurrency: usize,
    pub steady: usize,
    pub seed: u64,
    pub prefix: String,
    pub micro_sizes: Vec<usize>,
    pub micro_rounds: usize,
    pub duration: Duration,
}

impl Params {
    /// Validates the parameters; `groups`: whether the groups phase runs.
    pub fn check(&self, groups: bool) -> Result<(), String> {
        if self.users == 0 {
            return Err("--users must be at least 1".into());
        }
        if self.groups == 0 {
            return Err("--groups must be at least 1 (the big group)".into());
        }
        if groups && self.big_group > self.users {
            return Err(format!(
                "--big-group {} exceeds --users {}: the big group's members are existing users",
                self.big_group, self.users
            ));
        }
        if self.batch == 0 || self.concurrency == 0 {
            return Err("--batch and --concurrency must be at least 1".into());
        }
        if self.micro_rounds == 0 || self.micro_sizes.is_empty() {
            return Err("--micro-rounds and --micro-sizes must not be empty or 0".into());
        }
        Ok(())
    }

    pub fn json(&self) -> Value {
        json!({
            "users": self.users, "groups": self.groups, "group_size": self.group_size,
            "big_group": self.big_group, "batch": self.batch, "concurrency": self.concurrency,
            "steady": self.steady, "seed": self.seed, "prefix": self.prefix,
            "micro_sizes": self.micro_sizes, "micro_rounds": self.micro_rounds,
            "duration_s": self.duration.as_secs_f64(),
        })
    }
}

/// What one phase did: requests, errors, wall time, latencies per operation, and
/// phase-specific figures (`extra`).
#[derive(Debug, Clone)]
pub struct PhaseResult {
    pub name: String,
    pub wall_s: f64,
    pub stats: Stats,
    /// The phase's own unit of work per second (users/s, memberships/s, ops/s…).
    pub unit: &'static str,
    pub units: f64,
    /// The server's CPU seconds during the phase (docs/PERFORMANCE.md, "CPU per operation").
    pub server_cpu_s: Option<f64>,
    pub extra: Map<String, Value>,
}

impl PhaseResult {
    fn new(name: &str, wall: Duration, stats: Stats, unit: &'static str, units: f64) -> Self {
        PhaseResult {
            name: name.into(),
            wall_s: wall.as_secs_f64(),
            stats,
            unit,
            units,
            server_cpu_s: None,
            extra: Map::new(),
        }
    }

    fn with_cpu(mut self, cpu_s: Option<f64>) -> Self {
        self.server_cpu_s = cpu_s;
        self
    }

    /// Server CPU milliseconds per request of the phase.
    pub fn cpu_ms_per_op(&self) -> Option<f64> {
        per(self.server_cpu_s?, self.stats.requests as f64)
    }

    /// Server CPU milliseconds per unit of the phase's work (per synced user for sync: a
    /// lookup and a create).
    pub fn cpu_ms_per_unit(&self) -> Option<f64> {
        per(self.server_cpu_s?, self.units)
    }

    pub fn req_per_s(&self) -> f64 {
        if self.wall_s > 0.0 {
            self.stats.requests as f64 / self.wall_s
        } else {
            0.0
        }
    }

    pub fn units_per_s(&self) -> f64 {
        if self.wall_s > 0.0 {
            self.units / self.wall_s
        } else {
            0.0
        }
    }

    pub fn json(&self) -> Value {
        let ops: Map<String, Value> = self
            .stats
            .lat
            .keys()
            .map(|op| (op.clone(), self.stats.summary(Some(op)).json()))
            .collect();
        let all = self.stats.summary(None);
        let mut v = json!({
            "phase": self.name,
            "wall_s": round3(self.wall_s),
            "requests": self.stats.requests,
            "errors": self.stats.errors,
            "req_per_s": self.req_per_s().round(),
            "unit": self.unit,
            "units": self.units,
            "units_per_s": round3(self.units_per_s()),
            "p50_ms": round3(all.p50_ms),
            "p99_ms": round3(all.p99_ms),
            "ops": ops,
            "server_cpu_s": self.server_cpu_s.map(round3),
            "cpu_ms_per_op": self.cpu_ms_per_op().map(round4),
            "cpu_ms_per_unit": self.cpu_ms_per_unit().map(round4),
        });
        if let Some(m) = v.as_object_mut() {
            m.extend(self.extra.clone());
        }
        v
    }
}

/// `cpu_s` seconds over `n` things, in milliseconds each; `None` for nothing done.
pub fn per(cpu_s: f64, n: f64) -> Option<f64> {
    (n > 0.0).then(|| cpu_s * 1000.0 / n)
}

/// A latency summary with the server's CPU milliseconds per request beside it.
fn with_cpu_ms(mut lat: Value, cpu_ms: Option<f64>) -> Value {
    if let Some(m) = lat.as_object_mut() {
        m.insert("cpu_ms_per_request".into(), json!(cpu_ms.map(round4)));
    }
    lat
}

/// Four decimals: CPU milliseconds per request are often well below 0.1.
pub fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// The state carried between phases: who was created, under which id.
pub struct Workload<'a> {
    pub p: &'a Params,
    pub base: String,
    pub token: String,
    /// Ids of the W1 users by index (`None` where the sync failed).
    pub users: Vec<Option<String>>,
    /// Ids of the W1 groups by index; group 0 is the big group.
    pub groups: Vec<Option<String>>,
    /// Users and groups the micro phase created.
    pub micro_users: Vec<String>,
    pub micro_groups: Vec<String>,
    pub checks: Vec<Check>,
    /// Size of a user GET body seen during the run (for the hello-world ceiling).
    pub user_get_bytes: Option<usize>,
    /// Where the server's CPU time is read, sampled at the start and end of each phase.
    pub cpu: ServerCpu,
}

fn user_name(prefix: &str, i: usize) -> String {
    format!("{prefix}.user{i}@example.com")
}

fn group_name(prefix: &str, j: usize) -> String {
    if j == 0 {
        format!("{prefix} big group")
    } else {
        format!("{prefix} group {j}")
    }
}

const TITLES: [&str; 8] = [
    "Software Engineer",
    "Account Executive",
    "Product Manager",
    "Support Specialist",
    "Financial Analyst",
    "Recruiter",
    "Designer",
    "Site Reliability Engineer",
];
const DEPARTMENTS: [&str; 6] = [
    "Engineering",
    "Sales",
    "Product",
    "Customer Success",
    "Finance",
    "People",
];
const GIVEN: [&str; 8] = [
    "Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken",
];
const FAMILY: [&str; 8] = [
    "Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson",
];

fn guid(seed: u64, i: usize) -> String {
    let a = mix(seed ^ (i as u64).wrapping_mul(0x1000_0001));
    let b = mix(a);
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 52) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}

/// An IdP-shaped user: even indices as Okta sends them, odd as Entra ID does. About 700
/// bytes: core schema plus the enterprise extension, externalId, name, work email, title,
/// department.
pub fn user_body(prefix: &str, seed: u64, i: usize, title_variant: usize) -> Value {
    let name = user_name(prefix, i);
    let (given, family) = (GIVEN[i % GIVEN.len()], FAMILY[(i / 8) % FAMILY.len()]);
    let title = TITLES[(i + title_variant) % TITLES.len()];
    let department = DEPARTMENTS[i % DEPARTMENTS.len()];
    if i.is_multiple_of(2) {
        json!({
            "schemas": [USER_URN, ENTERPRISE_URN],
            "userName": name,
            "externalId": format!("00u{:017x}", mix(seed ^ i as u64) >> 4),
            "name": {"givenName": given, "familyName": family},
            "displayName": format!("{given} {family}"),
            "nickName": given,
            "emails": [{"primary": true, "value": name, "type": "work"}],
            "title": title,
            "locale": "en-US",
            "active": true,
            "phoneNumbers": [{"value": format!("+1 555 01{:02}", i % 100), "type": "mobile"}],
            ENTERPRISE_URN: {
                "employeeNumber": format!("E{i:07}"),
                "department": department,
                "costCenter": format!("CC-{}", 100 + i % 40),
                "organization": "Example Corp",
                "division": "Global"
            }
        })
    } else {
        json!({
            "schemas": [USER_URN, ENTERPRISE_URN],
            "externalId": guid(seed, i),
            "userName": name,
            "active": true,
            "displayName": format!("{given} {family}"),
            "title": title,
            "emails": [{"primary": true, "type": "work", "value": name}],
            "preferredLanguage": "en-US",
            "name": {"formatted": format!("{given} {family}"), "familyName": family, "givenName": given},
            "addresses": [{"type": "work", "streetAddress": format!("{} Main St", 1 + i % 900),
                "locality": "Seattle", "region": "WA", "postalCode": "98101", "country": "US", "primary": true}],
            ENTERPRISE_URN: {"employeeNumber": format!("{i}"), "department": department}
        })
    }
}

fn members_patch(ids: &[&str], entra: bool) -> Vec<u8> {
    let value: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    let op = if entra { "Add" } else { "add" };
    json!({"schemas": [PATCH_URN], "Operations": [{"op": op, "path": "members", "value": value}]})
        .to_string()
        .into_bytes()
}

fn remove_member_patch(id: &str) -> Vec<u8> {
    json!({"schemas": [PATCH_URN], "Operations": [{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]})
        .to_string()
        .into_bytes()
}

fn total_results(v: &Value) -> Result<u64, String> {
    v.get("totalResults")
        .and_then(Value::as_u64)
        .ok_or_else(|| "list response without totalResults".to_string())
}

fn first_id(v: &Value) -> Result<String, String> {
    v.get("Resources")
        .and_then(|r| r.get(0))
        .and_then(|r| r.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| "list response without Resources[0].id".to_string())
}

fn id_of(v: &Value) -> Result<String, String> {
    v.get("id")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| "created resource without an id".to_string())
}

/// Lookup by `filter`, then create with `body` if nothing matched (as the IdPs do);
/// returns the id either way. Latencies go under `lookup_op` and `create_op`.
#[allow(clippy::too_many_arguments)]
fn lookup_then_create(
    c: &Client,
    st: &mut Stats,
    endpoint: &str,
    query: &str,
    body: &[u8],
    lookup_op: &str,
    create_op: &str,
    matched: &AtomicUsize,
) -> Option<String> {
    let r = c.timed(
        st,
        lookup_op,
        "GET",
        &format!("/{endpoint}?{query}"),
        None,
        &[200],
    )?;
    let found = r
        .json()
        .and_then(|v| Ok((total_results(&v)?, v)))
        .and_then(|(n, v)| {
            if n == 0 {
                Ok(None)
            } else if n == 1 {
                first_id(&v).map(Some)
            } else {
                Err(format!("{n} resources match {query}"))
            }
        });
    match found {
        Ok(Some(id)) => {
            matched.fetch_add(1, Ordering::Relaxed);
            Some(id)
        }
        Ok(None) => {
            let r = c.timed(
                st,
                create_op,
                "POST",
                &format!("/{endpoint}"),
                Some(body),
                &[201],
            )?;
            match r.json().and_then(|v| id_of(&v)) {
                Ok(id) => Some(id),
                Err(e) => {
                    st.error(format!("POST /{endpoint}: {e}"));
                    None
                }
            }
        }
        Err(e) => {
            st.error(format!("GET /{endpoint}?{query}: {e}"));
            None
        }
    }
}

fn user_query(name: &str) -> String {
    format!("filter={}", enc(&format!("userName eq \"{name}\"")))
}

fn group_query(name: &str) -> String {
    format!(
        "excludedAttributes=members&filter={}",
        enc(&format!("displayName eq \"{name}\""))
    )
}

/// Number of members of a group, read back in full (not timed).
fn member_count(c: &Client, gid: &str) -> Result<usize, String> {
    let r = c.send("GET", &format!("/Groups/{gid}"), None)?;
    if r.status != 200 {
        return Err(format!("GET /Groups/{gid}: status {}", r.status));
    }
    let v = r.json()?;
    Ok(v.get("members")
        .and_then(Value::as_array)
        .map_or(0, Vec::len))
}

fn collect(slots: Vec<OnceLock<String>>) -> Vec<Option<String>> {
    slots.into_iter().map(OnceLock::into_inner).collect()
}

impl<'a> Workload<'a> {
    pub fn new(p: &'a Params, base: &str, token: &str) -> Self {
        Workload {
            p,
            base: base.to_string(),
            token: token.to_string(),
            users: Vec::new(),
            groups: Vec::new(),
            micro_users: Vec::new(),
            micro_groups: Vec::new(),
            checks: Vec::new(),
            user_get_bytes: None,
            cpu: ServerCpu::Unmeasured,
        }
    }

    fn check(&mut self, name: &str, result: Result<String, String>) {
        let (ok, detail) = match result {
            Ok(d) => (true, d),
            Err(d) => (false, d),
        };
        self.checks.push(Check {
            name: name.into(),
            ok,
            detail,
        });
    }

    /// Server CPU milliseconds per request over `requests` sent since the reading `start`.
    fn cpu_ms_per_request(&self, start: Option<f64>, requests: u64) -> Option<f64> {
        per(self.cpu.since(start)?, requests as f64)
    }

    fn client(&self) -> Client {
        Client::new(&self.base, Some(&self.token))
    }

    fn valid_users(&self) -> Vec<usize> {
        (0..self.users.len())
            .filter(|&i| self.users[i].is_some())
            .collect()
    }

    /// Phase 1: lookup by userName, then create.
    pub fn sync(&mut self) -> PhaseResult {
        let p = self.p;
        let slots: Vec<OnceLock<String>> = (0..p.users).map(|_| OnceLock::new()).collect();
        let matched = AtomicUsize::new(0);
        let started = Instant::now();
        let cpu0 = self.cpu.seconds();
        let st = parallel(
            &self.base,
            Some(&self.token),
            p.concurrency,
            p.users,
            |c, st, i| {
                let name = user_name(&p.prefix, i);
                let body = user_body(&p.prefix, p.seed, i, 0).to_string().into_bytes();
                if let Some(id) = lookup_then_create(
                    c,
                    st,
                    "Users",
                    &user_query(&name),
                    &body,
                    "lookup",
                    "create",
                    &matched,
                ) {
                    let _ = slots[i].set(id);
                }
            },
        );
        let wall = started.elapsed();
        let cpu = self.cpu.since(cpu0);
        self.users = collect(slots);
        let ok = self.users.iter().flatten().count();
        let mut r = PhaseResult::new("sync", wall, st, "users", ok as f64).with_cpu(cpu);
        r.extra
            .insert("matched".into(), json!(matched.load(Ordering::Relaxed)));
        r
    }

    /// Phases 2 and 3: create the groups empty, then add members by PATCH in shuffled batches.
    pub fn groups(&mut self) -> (PhaseResult, PhaseResult) {
        let p = self.p;
        let slots: Vec<OnceLock<String>> = (0..p.groups).map(|_| OnceLock::new()).collect();
        let matched = AtomicUsize::new(0);
        let started = Instant::now();
        let cpu0 = self.cpu.seconds();
        let st = parallel(
            &self.base,
            Some(&self.token),
            p.concurrency,
            p.groups,
            |c, st, j| {
                let name = group_name(&p.prefix, j);
                let body = json!({"schemas": [GROUP_URN], "displayName": name,
                "externalId": guid(p.seed ^ 0x6767, j), "members": []})
                .to_string()
                .into_bytes();
                if let Some(id) = lookup_then_create(
                    c,
                    st,
                    "Groups",
                    &group_query(&name),
                    &body,
                    "lookup",
                    "create",
                    &matched,
                ) {
                    let _ = slots[j].set(id);
                }
            },
        );
        let wall = started.elapsed();
        let cpu = self.cpu.since(cpu0);
        self.groups = collect(slots);
        let created = self.groups.iter().flatten().count();
        let mut groups =
            PhaseResult::new("groups", wall, st, "groups", created as f64).with_cpu(cpu);
        groups
            .extra
            .insert("matched".into(), json!(matched.load(Ordering::Relaxed)));

        // Membership plan: the big group takes users 0..M, group j ≥ 1 takes K users from
        // (j−1)·K on (wrapping). Users whose sync failed are left out (already errors).
        let n = self.users.len();
        let mut expected: Vec<usize> = vec![0; p.groups];
        let mut batches: Vec<(usize, Vec<&str>)> = Vec::new();
        for (j, gid) in self.groups.iter().enumerate() {
            if gid.is_none() || n == 0 {
                continue;
            }
            let members: Vec<usize> = if j == 0 {
                (0..p.big_group.min(n)).collect()
            } else {
                (0..p.group_size.min(n))
                    .map(|t| ((j - 1) * p.group_size + t) % n)
                    .collect()
            };
            let ids: Vec<&str> = members
                .iter()
                .filter_map(|&u| self.users[u].as_deref())
                .collect();
            expected[j] = ids.len();
            for chunk in ids.chunks(p.batch) {
                batches.push((j, chunk.to_vec()));
            }
        }
        Rng::new(p.seed).shuffle(&mut batches);
        let memberships: usize = batches.iter().map(|(_, b)| b.len()).sum();
        let groups_ids = &self.groups;
        let started = Instant::now();
        let cpu0 = self.cpu.seconds();
        let st = parallel(
            &self.base,
            Some(&self.token),
            p.concurrency,
            batches.len(),
            |c, st, k| {
                let (j, ids) = &batches[k];
                let Some(gid) = groups_ids[*j].as_deref() else {
                    return;
                };
                let op = if *j == 0 { "patch_big" } else { "patch_small" };
                c.timed(
                    st,
                    op,
                    "PATCH",
                    &format!("/Groups/{gid}"),
                    Some(&members_patch(ids, k % 2 == 1)),
                    &[200, 204],
                );
            },
        );
        let wall = started.elapsed();
        let cpu = self.cpu.since(cpu0);
        let mut members =
            PhaseResult::new("members", wall, st, "memberships", memberships as f64).with_cpu(cpu);
        members.extra.insert("patches".into(), json!(batches.len()));

        // Read back the member counts of the big group and one small group (not timed).
        let c = self.client();
        for j in [0usize, 1] {
            let Some(Some(gid)) = self.groups.get(j) else {
                continue;
            };
            let want = expected[j];
            let got = member_count(&c, gid);
            let what = if j == 0 { "big group" } else { "group 1" };
            self.check(
                &format!("members: {what} has {want} members"),
                got.and_then(|g| {
                    if g == want {
                        Ok(format!("{g}"))
                    } else {
                        Err(format!("{g} members, expected {want}"))
                    }
                }),
            );
        }
        (groups, members)
    }

    /// Phase 4: the steady-state mix, `S` operations with a fixed seed.
    pub fn steady(&mut self) -> PhaseResult {
        let p = self.p;
        let valid = self.valid_users();
        if valid.is_empty() {
            let mut st = Stats::default();
            st.error("steady: no users (the sync phase created none)".into());
            return PhaseResult::new("steady", Duration::ZERO, st, "ops", 0.0);
        }
        let n = self.users.len();
        // Small groups with at least one user outside them, for member add-then-remove.
        let small: Vec<usize> = (1..self.groups.len())
            .filter(|&j| self.groups[j].is_some())
            .collect();
        let can_add_remove = !small.is_empty() && p.group_size < n;
        let body_size = AtomicUsize::new(0);
        let (users, groups) = (&self.users, &self.groups);
        let started = Instant::now();
        let cpu0 = self.cpu.seconds();
        let st = parallel(
            &self.base,
            Some(&self.token),
            p.concurrency,
            p.steady,
            |c, st, k| {
                let r = mix(p.seed.wrapping_mul(31).wrapping_add(k as u64));
                let u = valid[(r >> 8) as usize % valid.len()];
                let Some(id) = users[u].as_deref() else {
                    return;
                };
                let name = user_name(&p.prefix, u);
                let pick = r % 100;
                match pick {
                    0..=29 => {
                        if let Some(reply) = c.timed(
                            st,
                            "get_by_id",
                            "GET",
                            &format!("/Users/{id}"),
                            None,
                            &[200],
                        ) {
                            body_size.store(reply.body.len(), Ordering::Relaxed);
                        }
                    }
                    30..=59 => {
                        let path = format!("/Users?{}", user_query(&name));
                        if let Some(reply) =
                            c.timed(st, "filter_username", "GET", &path, None, &[200])
                        {
                            match reply.json().and_then(|v| total_results(&v)) {
                                Ok(1) => {}
                                Ok(other) => {
                                    st.error(format!("GET {path}: {other} results, expected 1"))
                                }
                                Err(e) => st.error(format!("GET {path}: {e}")),
                            }
                        }
                    }
                    60..=71 => {
                        let body = json!({"schemas": [PATCH_URN], "Operations": [{"op": "replace", "value": {"active": false}}]});
                        c.timed(
                            st,
                            "patch_okta_active",
                            "PATCH",
                            &format!("/Users/{id}"),
                            Some(body.to_string().as_bytes()),
                            &[200],
                        );
                    }
                    72..=83 => {
                        let family = format!("{}-{k}", FAMILY[u % FAMILY.len()]);
                        let body = json!({"schemas": [PATCH_URN], "Operations": [
                            {"op": "Replace", "path": "name.familyName", "value": family},
                            {"op": "Replace", "path": "displayName", "value": format!("{} {family}", GIVEN[u % GIVEN.len()])}
                        ]});
                        c.timed(
                            st,
                            "patch_entra_paths",
                            "PATCH",
                            &format!("/Users/{id}"),
                            Some(body.to_string().as_bytes()),
                            &[200],
                        );
                    }
                    84..=93 => {
                        let body = user_body(&p.prefix, p.seed, u, 1 + k % 7);
                        c.timed(
                            st,
                            "put",
                            "PUT",
                            &format!("/Users/{id}"),
                            Some(body.to_string().as_bytes()),
                            &[200],
                        );
                    }
                    _ if can_add_remove => {
                        let j = small[(r >> 20) as usize % small.len()];
                        // A user outside group j: j's members are (j−1)·K … (j−1)·K+K−1 (mod n).
                        let outside = ((j - 1) * p.group_size
                            + p.group_size
                            + (r >> 32) as usize % (n - p.group_size))
                            % n;
                        let (Some(gid), Some(uid)) =
                            (groups[j].as_deref(), users[outside].as_deref())
                        else {
                            return;
                        };
                        let path = format!("/Groups/{gid}");
                        if c.timed(
                            st,
                            "group_add",
                            "PATCH",
                            &path,
                            Some(&members_patch(&[uid], false)),
                            &[200, 204],
                        )
                        .is_some()
                        {
                            c.timed(
                                st,
                                "group_remove",
                                "PATCH",
                                &path,
                                Some(&remove_member_patch(uid)),
                                &[200, 204],
                            );
                        }
                    }
                    _ => {
                        c.timed(
                            st,
                            "get_by_id",
                            "GET",
                            &format!("/Users/{id}"),
                            None,
                            &[200],
                        );
                    }
                }
            },
        );
        let wall = started.elapsed();
        let cpu = self.cpu.since(cpu0);
        let size = body_size.load(Ordering::Relaxed);
        if size > 0 {
            self.user_get_bytes = Some(size);
        }
        // The add-then-remove pairs leave every group as it was.
        if let Some(Some(gid)) = self.groups.get(1) {
            let want = p.group_size.min(n);
            let got = member_count(&self.client(), gid);
            self.check(
                "steady: group 1 unchanged by add-then-remove",
                got.and_then(|g| {
                    if g == want {
                        Ok(format!("{g}"))
                    } else {
                        Err(format!("{g} members, expected {want}"))
                    }
                }),
            );
        }
        PhaseResult::new("steady", wall, st, "ops", p.steady as f64).with_cpu(cpu)
    }

    /// Phase 5: page through all users, 100 per page, spread over the workers.
    pub fn list(&mut self) -> PhaseResult {
        let p = self.p;
        let c = self.client();
        let total = c
            .send("GET", "/Users?count=0", None)
            .and_then(|r| {
                if r.status == 200 {
                    r.json()
                } else {
                    Err(format!("GET /Users?count=0: status {}", r.status))
                }
            })
            .and_then(|v| total_results(&v));
        let total = match total {
            Ok(t) => t as usize,
            Err(e) => {
                let mut st = Stats::default();
                st.error(e);
                return PhaseResult::new("list", Duration::ZERO, st, "users", 0.0);
            }
        };
        const PAGE: usize = 100;
        let pages = total.div_ceil(PAGE);
        let slots: Vec<OnceLock<Vec<String>>> = (0..pages).map(|_| OnceLock::new()).collect();
        let started = Instant::now();
        let cpu0 = self.cpu.seconds();
        let st = parallel(
            &self.base,
            Some(&self.token),
            p.concurrency,
            pages,
            |c, st, k| {
                let path = format!("/Users?startIndex={}&count={PAGE}", 1 + k * PAGE);
                let Some(r) = c.timed(st, "page", "GET", &path, None, &[200]) else {
                    return;
                };
                let v = match r.json() {
                    Ok(v) => v,
                    Err(e) => return st.error(format!("GET {path}: {e}")),
                };
                match total_results(&v) {
                    Ok(t) if t as usize == total => {}
                    Ok(t) => st.error(format!("GET {path}: totalResults {t}, was {total}")),
                    Err(e) => st.error(format!("GET {path}: {e}")),
                }
                let ids: Vec<String> = v
                    .get("Resources")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|r| r.get("id").and_then(Value::as_str).map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let _ = slots[k].set(ids);
            },
        );
        let wall = started.elapsed();
        let cpu = self.cpu.since(cpu0);
        let mut seen: HashMap<String, usize> = HashMap::with_capacity(total);
        for ids in slots.into_iter().flat_map(OnceLock::into_inner) {
            for id in ids {
                *seen.entry(id).or_default() += 1;
            }
        }
        let dup = seen.values().filter(|&&n| n > 1).count();
        let listed: usize = seen.values().sum();
        let ours: Vec<&String> = self
            .users
            .iter()
            .flatten()
            .chain(self.micro_users.iter())
            .collect();
        let missing = ours
            .iter()
            .filter(|id| !seen.contains_key(id.as_str()))
            .count();
        self.check(
            "list: every user exactly once, totalResults stable",
            if dup == 0 && missing == 0 && listed == total && st.errors == 0 {
                Ok(format!("{total} users on {pages} pages"))
            } else {
                Err(format!("{listed} listed of totalResults {total}; {dup} ids more than once; {missing} of our {} users missing", ours.len()))
            },
        );
        let best = |start: usize| {
            (0..3)
                .filter_map(|_| {
                    let t = Instant::now();
                    let path = format!("/Users?startIndex={start}&count={PAGE}");
                    c.send("GET", &path, None)
                        .ok()
                        .filter(|r| r.status == 200)
                        .map(|_| t.elapsed().as_secs_f64() * 1000.0)
                })
                .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.min(x))))
        };
        let first = best(1);
        let last = best(1 + pages.saturating_sub(1) * PAGE);
        let mut r = PhaseResult::new("list", wall, st, "users", total as f64).with_cpu(cpu);
        r.extra.insert("pages".into(), json!(pages));
        r.extra
            .insert("first_page_ms".into(), json!(first.map(round3)));
        r.extra
            .insert("last_page_ms".into(), json!(last.map(round3)));
        r
    }

    /// Micro-benchmarks: add one member to groups of each size, GET a group without its
    /// members at each size, a non-indexed filter over all users, and GET-by-id and
    /// userName lookups alone at the run's concurrency.
    pub fn micro(&mut self) -> (PhaseResult, PhaseResult) {
        let p = self.p;
        const SPARE: usize = 16;
        let mut sizes = p.micro_sizes.clone();
        sizes.sort_unstable();
        sizes.dedup();
        let largest = sizes.last().copied().unwrap_or(0);
        let need = largest + SPARE;
        let setup_started = Instant::now();
        let setup_cpu0 = self.cpu.seconds();
        let mut setup = Stats::default();

        // The member pool: W1 users first, then as many extra users as the sizes need.
        let mut pool: Vec<String> = self.users.iter().flatten().cloned().collect();
        pool.extend(self.micro_users.iter().cloned());
        let extra = need.saturating_sub(pool.len());
        if extra > 0 {
            let first = self.micro_users.len();
            let slots: Vec<OnceLock<String>> = (0..extra).map(|_| OnceLock::new()).collect();
            let matched = AtomicUsize::new(0);
            let prefix = format!("{}.micro", p.prefix);
            setup.merge(parallel(
                &self.base,
                Some(&self.token),
                p.concurrency,
                extra,
                |c, st, i| {
                    let idx = first + i;
                    let body = user_body(&prefix, p.seed, idx, 0).to_string().into_bytes();
                    if let Some(id) = lookup_then_create(
                        c,
                        st,
                        "Users",
                        &user_query(&user_name(&prefix, idx)),
                        &body,
                        "lookup",
                        "create",
                        &matched,
                    ) {
                        let _ = slots[i].set(id);
                    }
                },
            ));
            let made: Vec<String> = slots.into_iter().flat_map(OnceLock::into_inner).collect();
            self.micro_users.extend(made.iter().cloned());
            pool.extend(made);
        }
        let c = self.client();
        let mut adds: Map<String, Value> = Map::new();
        let mut gets: Map<String, Value> = Map::new();
        let mut add_p50 = Vec::new();
        let mut get_p50 = Vec::new();
        let mut st = Stats::default();
        let mut groups_by_size = Vec::new();
        if pool.len() < need {
            setup.error(format!(
                "micro: {} users available, {need} needed",
                pool.len()
            ));
        } else {
            for &size in &sizes {
                let name = format!("{} micro {size}", p.prefix);
                let body = json!({"schemas": [GROUP_URN], "displayName": name, "members": []})
                    .to_string()
                    .into_bytes();
                let matched = AtomicUsize::new(0);
                let Some(gid) = lookup_then_create(
                    &c,
                    &mut setup,
                    "Groups",
                    &group_query(&name),
                    &body,
                    "lookup",
                    "create",
                    &matched,
                ) else {
                    continue;
                };
                self.micro_groups.push(gid.clone());
                let ids: Vec<&str> = pool[..size].iter().map(String::as_str).collect();
                let chunks: Vec<&[&str]> = ids.chunks(p.batch).collect();
                setup.merge(parallel(
                    &self.base,
                    Some(&self.token),
                    p.concurrency,
                    chunks.len(),
                    |c, st, k| {
                        c.timed(
                            st,
                            "fill",
                            "PATCH",
                            &format!("/Groups/{gid}"),
                            Some(&members_patch(chunks[k], false)),
                            &[200, 204],
                        );
                    },
                ));
                let got = member_count(&c, &gid);
                self.check(
                    &format!("micro: group of {size} filled"),
                    got.and_then(|g| {
                        if g == size {
                            Ok(format!("{g}"))
                        } else {
                            Err(format!("{g} members, expected {size}"))
                        }
                    }),
                );
                groups_by_size.push((size, gid));
            }
        }
        let setup_wall = setup_started.elapsed();
        let setup_cpu = self.cpu.since(setup_cpu0);

        let started = Instant::now();
        let cpu0 = self.cpu.seconds();
        for (size, gid) in &groups_by_size {
            let path = format!("/Groups/{gid}");
            let op = format!("add_one_member_{size}");
            let (sent, cpu_add) = (st.requests, self.cpu.seconds());
            for r in 0..p.micro_rounds {
                let uid = &pool[size + r % SPARE];
                if c.timed(
                    &mut st,
                    &op,
                    "PATCH",
                    &path,
                    Some(&members_patch(&[uid], false)),
                    &[200, 204],
                )
                .is_some()
                {
                    c.timed(
                        &mut st,
                        "remove_one_member",
                        "PATCH",
                        &path,
                        Some(&remove_member_patch(uid)),
                        &[200, 204],
                    );
                }
            }
            let lat = st.summary(Some(&op));
            add_p50.push(lat.p50_ms);
            // Per request: each add is followed by the remove that undoes it.
            let cpu_ms = self.cpu_ms_per_request(cpu_add, st.requests - sent);
            adds.insert(size.to_string(), with_cpu_ms(lat.json(), cpu_ms));
            let op = format!("get_group_excl_members_{size}");
            let get_path = format!("/Groups/{gid}?excludedAttributes=members");
            let (sent, cpu_get) = (st.requests, self.cpu.seconds());
            for _ in 0..p.micro_rounds {
                if let Some(r) = c.timed(&mut st, &op, "GET", &get_path, None, &[200]) {
                    if r.json().map(|v| v.get("members").is_some()).unwrap_or(true) {
                        st.error(format!("GET {get_path}: members present or not JSON"));
                    }
                }
            }
            let lat = st.summary(Some(&op));
            get_p50.push(lat.p50_ms);
            let cpu_ms = self.cpu_ms_per_request(cpu_get, st.requests - sent);
            gets.insert(size.to_string(), with_cpu_ms(lat.json(), cpu_ms));
        }

        // A filter on an attribute without an index: a scan of every user.
        let title = TITLES[0];
        let path = format!(
            "/Users?count=10&filter={}",
            enc(&format!("title eq \"{title}\""))
        );
        let (sent, cpu_scan) = (st.requests, self.cpu.seconds());
        for _ in 0..(p.micro_rounds / 10).max(3) {
            if let Some(r) = c.timed(
                &mut st,
                "filter_title_unindexed",
                "GET",
                &path,
                None,
                &[200],
            ) {
                if let Err(e) = r.json().and_then(|v| total_results(&v)) {
                    st.error(format!("GET {path}: {e}"));
                }
            }
        }
        let filter_title = with_cpu_ms(
            st.summary(Some("filter_title_unindexed")).json(),
            self.cpu_ms_per_request(cpu_scan, st.requests - sent),
        );

        // GET by id and userName lookups alone at the run's concurrency, for `duration` each.
        let named: Vec<(String, &str)> = self
            .users
            .iter()
            .enumerate()
            .filter_map(|(i, id)| id.as_deref().map(|id| (user_name(&p.prefix, i), id)))
            .collect();
        let mut reads = Map::new();
        if named.is_empty() {
            st.error("micro: no users for the read tests (run sync first)".into());
        } else {
            for op in ["get_by_id", "filter_username"] {
                let t = Instant::now();
                let cpu_read = self.cpu.seconds();
                let s = for_duration(
                    &self.base,
                    Some(&self.token),
                    p.concurrency,
                    p.duration,
                    p.seed,
                    |c, st, rng| {
                        let (name, id) = &named[rng.below(named.len())];
                        if op == "get_by_id" {
                            c.timed(st, op, "GET", &format!("/Users/{id}"), None, &[200]);
                        } else {
                            let path = format!("/Users?{}", user_query(name));
                            if let Some(r) = c.timed(st, op, "GET", &path, None, &[200]) {
                                match r.json().and_then(|v| total_results(&v)) {
                                    Ok(1) => {}
                                    Ok(n) => {
                                        st.error(format!("GET {path}: {n} results, expected 1"))
                                    }
                                    Err(e) => st.error(format!("GET {path}: {e}")),
                                }
                            }
                        }
                    },
                );
                let wall = t.elapsed().as_secs_f64();
                let cpu_ms = self.cpu_ms_per_request(cpu_read, s.requests);
                let lat = s.summary(Some(op));
                let mut j = with_cpu_ms(lat.json(), cpu_ms);
                if let Some(m) = j.as_object_mut() {
                    m.insert(
                        "req_per_s".into(),
                        json!((s.requests as f64 / wall).round()),
                    );
                }
                reads.insert(op.into(), j);
                st.merge(s);
            }
        }
        let wall = started.elapsed();
        let cpu = self.cpu.since(cpu0);
        let ratio = |v: &[f64]| match (v.first(), v.last()) {
            (Some(&a), Some(&b)) if a > 0.0 && v.len() > 1 => Some(round3(b / a)),
            _ => None,
        };
        let mut micro = PhaseResult::new("micro", wall, st, "requests", 0.0).with_cpu(cpu);
        micro.units = micro.stats.requests as f64;
        micro
            .extra
            .insert("add_one_member".into(), Value::Object(adds));
        micro.extra.insert(
            "add_one_member_p50_ratio_largest_to_smallest".into(),
            json!(ratio(&add_p50)),
        );
        micro
            .extra
            .insert("get_group_excl_members".into(), Value::Object(gets));
        micro.extra.insert(
            "get_group_excl_members_p50_ratio_largest_to_smallest".into(),
            json!(ratio(&get_p50)),
        );
        micro
            .extra
            .insert("filter_title_unindexed".into(), filter_title);
        micro.extra.insert("reads".into(), Value::Object(reads));
        micro
            .extra
            .insert("users_in_pool".into(), json!(pool.len()));
        let setup = PhaseResult::new("micro-setup", setup_wall, setup, "users", extra as f64)
            .with_cpu(setup_cpu);
        (setup, micro)
    }

    /// Phase 6: delete every user and group of the run, then check a sample answers 404.
    pub fn delete(&mut self) -> PhaseResult {
        let p = self.p;
        let users: Vec<String> = self
            .users
            .iter()
            .flatten()
            .chain(self.micro_users.iter())
            .cloned()
            .collect();
        let groups: Vec<String> = self
            .groups
            .iter()
            .flatten()
            .chain(self.micro_groups.iter())
            .cloned()
            .collect();
        let started = Instant::now();
        let cpu0 = self.cpu.seconds();
        let mut st = parallel(
            &self.base,
            Some(&self.token),
            p.concurrency,
            users.len(),
            |c, st, i| {
                c.timed(
                    st,
                    "delete_user",
                    "DELETE",
                    &format!("/Users/{}", users[i]),
                    None,
                    &[204, 200],
                );
            },
        );
        st.merge(parallel(
            &self.base,
            Some(&self.token),
            p.concurrency,
            groups.len(),
            |c, st, i| {
                c.timed(
                    st,
                    "delete_group",
                    "DELETE",
                    &format!("/Groups/{}", groups[i]),
                    None,
                    &[204, 200],
                );
            },
        ));
        let wall = started.elapsed();
        let cpu = self.cpu.since(cpu0);
        let c = self.client();
        let step = (users.len() / 20).max(1);
        let sample: Vec<&String> = users.iter().step_by(step).chain(groups.first()).collect();
        let mut bad = Vec::new();
        for (k, id) in sample.iter().enumerate() {
            let endpoint = if k + 1 == sample.len() && !groups.is_empty() {
                "Groups"
            } else {
                "Users"
            };
            match c.send("GET", &format!("/{endpoint}/{id}"), None) {
                Ok(r) if r.status == 404 => {}
                Ok(r) => bad.push(format!("{endpoint}/{id}: {}", r.status)),
                Err(e) => bad.push(e),
            }
        }
        self.check(
            "delete: deleted resources answer 404",
            if bad.is_empty() {
                Ok(format!("{} sampled", sample.len()))
            } else {
                Err(bad.join("; "))
            },
        );
        self.users.clear();
        self.micro_users.clear();
        self.groups.clear();
        self.micro_groups.clear();
        PhaseResult::new(
            "delete",
            wall,
            st,
            "resources",
            (users.len() + groups.len()) as f64,
        )
        .with_cpu(cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_bodies_are_idp_sized() {
        for i in [0usize, 1, 2, 3, 12345, 99_999] {
            let n = user_body("w1", 42, i, 0).to_string().len();
            assert!((600..=800).contains(&n), "user {i}: {n} bytes");
        }
    }
}
