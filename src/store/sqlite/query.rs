//! Filters and sorts compiled to SQL over `resources` (and `memberships`), with exactly the
//! semantics of the in-memory evaluator [`crate::scim::filter::matches`] on the rendered
//! resource.
//!
//! - No client text ever becomes SQL text: literals are bound parameters, and the only names
//!   in the SQL are fixed column names and JSON paths built from the schema's canonical names
//!   (after [`resolve`] matched the client's name against the schema).
//! - `and`/`or` chains are flattened and regrouped as balanced trees ([`balanced`]), so long
//!   chains stay far from SQLite's expression depth limit.
//! - Every compiled predicate is strictly 0 or 1, never NULL, so `not (...)` and `ne` are true
//!   when the attribute is absent, as in the evaluator.
//! - `caseExact: false` attributes compare `scim_fold(stored)` with the literal folded in Rust
//!   by [`fold_case`]; `scim_fold` is that same function registered on every connection
//!   ([`register_functions`]). Other strings compare byte-wise (code-point order), `co`/`sw`/
//!   `ew` on the UTF-8 bytes, so `%`, `_`, `\` and quotes are ordinary characters.
//! - `userName eq` (Users), `displayName eq` (Groups), `externalId eq` and `id eq` use their
//!   indexes; the unique names through `name_key`, the name folded by [`fold_case`] when it
//!   is written, on which they are also unique.
//! - dateTimes (`meta.created`, `meta.lastModified`, stored RFC 3339 UTC with at most
//!   millisecond precision) compare as integer milliseconds; the literal is parsed in Rust and
//!   rounded towards the right side for each operator, so a literal with another offset or
//!   finer precision compares as the exact instant it names.
//!
//! Documents are assumed to have the shapes validation gives them (a multi-valued attribute
//! is an array, a complex one an object); values of the wrong JSON type never match.

use rusqlite::functions::FunctionFlags;
use rusqlite::types::{Value as Sql, ValueRef};
use rusqlite::Connection;
use serde_json::Value;

use crate::scim::filter::{fold_case, resolve, AttrPath, CompareOp, Filter};
use crate::scim::list::{Bound, Seek, Sort, SortValue};
use crate::scim::path::Resolved;
use crate::scim::schema::{AttrDef, AttrType, ResourceSchema};
use crate::scim::ResourceKind;
use crate::store::shared::millis_bound;

/// Stands for the bound base URL in SQL being built; replaced by its parameter at the end.
/// (SQL text never contains client text, so it cannot occur otherwise.)
const BASE: &str = "\u{1}base\u{1}";

/// Registers `scim_fold(text)`: [`fold_case`] (full Unicode lower-casing); NULL for anything
/// that is not text.
pub(crate) fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "scim_fold",
        1,
        FunctionFlags::SQLITE_UTF8
            | FunctionFlags::SQLITE_DETERMINISTIC
            | FunctionFlags::SQLITE_INNOCUOUS,
        |ctx| {
            Ok(match ctx.get_raw(0) {
                ValueRef::Text(t) => Some(fold_case(&String::from_utf8_lossy(t))),
                _ => None,
            })
        },
    )
}

/// A compiled list query: the WHERE clause and ORDER BY terms over `resources`, and the
/// parameters they number (`?1` is the tenant).
pub(crate) struct Compiled {
    pub where_sql: String,
    pub order_sql: String,
    pub args: Vec<Sql>,
}

pub(crate) fn compile(
    tenant: &str,
    rs: &ResourceSchema,
    filter: Option<&Filter>,
    sort: Option<&Sort>,
    base: &str,
) -> Compiled {
    let (mut c, where_sql) = selection(tenant, rs, filter, base);
    let order_sql = match sorting(&mut c, sort) {
        Some((key, desc)) => order(Some(&key), desc, false),
        None => order(None, false, false),
    };
    Compiled {
        where_sql,
        order_sql,
        args: c.args,
    }
}

/// A compiled keyset page ([`Seek`]): the WHERE clause with the position's condition, the
/// ORDER BY in the direction of travel, and the sort key's expression (`NULL` without a
/// sort), whose value in each row is the row's position.
pub(crate) struct Seeking {
    pub compiled: Compiled,
    pub key_sql: String,
}

pub(crate) fn compile_seek(
    tenant: &str,
    rs: &ResourceSchema,
    filter: Option<&Filter>,
    sort: Option<&Sort>,
    seek: &Seek,
    base: &str,
) -> Seeking {
    let (mut c, mut where_sql) = selection(tenant, rs, filter, base);
    let sorting = sorting(&mut c, sort);
    let (key, desc) = match &sorting {
        Some((key, desc)) => (Some(key.as_str()), *desc),
        None => (None, false),
    };
    if let Some(from) = &seek.from {
        where_sql.push_str(" AND ");
        where_sql.push_str(&c.keyset(key, desc, seek.backward, from));
    }
    Seeking {
        compiled: Compiled {
            where_sql,
            order_sql: order(key, desc, seek.backward),
            args: c.args,
        },
        key_sql: key.unwrap_or("NULL").to_string(),
    }
}

/// The compiler and the WHERE clause of a list query (`?1` is the tenant).
fn selection<'r>(
    tenant: &str,
    rs: &'r ResourceSchema,
    filter: Option<&Filter>,
    base: &str,
) -> (Compiler<'r>, String) {
    let kind = rs.kind;
    let mut c = Compiler {
        rs,
        kind,
        args: vec![Sql::Text(tenant.to_string())],
        aliases: 0,
    };
    // The kind is one of two fixed names, written literally so the partial indexes
    // (`WHERE kind = 'User'`) apply.
    let mut where_sql = format!(
        "resources.tenant = +?1 AND resources.kind = '{}'",
        kind.name()
    );
    if let Some(f) = filter {
        where_sql.push_str(" AND ");
        where_sql.push_str(&c.filter(f, &Scope::Resource));
    }
    // The base URL is bound only if a predicate that kept it refers to it (SQLite refuses
    // parameters the statement does not use).
    if where_sql.contains(BASE) {
        let p = c.bind(Sql::Text(base.to_string()));
        where_sql = where_sql.replace(BASE, &p);
    }
    (c, where_sql)
}

/// The sort key's expression and whether it descends, when `sort` names a sortable
/// attribute of the type.
fn sorting(c: &mut Compiler, sort: Option<&Sort>) -> Option<(String, bool)> {
    let (s, r) = sort.and_then(|s| s.resolve(c.rs).map(|r| (s, r)))?;
    Some((c.sort_key(&r), s.descending()))
}

/// The ORDER BY terms: the sort key, then `pk`, which is unique, so the order is total and
/// keyset pages never overlap or skip. RFC 7644 §3.4.2.3: resources without a value come last
/// when ascending and first when descending, i.e. a missing value orders as if above every
/// value. `backward` reverses all of it.
fn order(key: Option<&str>, desc: bool, backward: bool) -> String {
    let pk = if backward {
        "resources.pk DESC"
    } else {
        "resources.pk"
    };
    match key {
        Some(k) if desc != backward => format!("{k} DESC NULLS FIRST, {pk}"),
        Some(k) => format!("{k} ASC NULLS LAST, {pk}"),
        None => pk.to_string(),
    }
}

/// The ids of the members of a group (its pk is `?1`) that a value filter on `members`
/// selects — `{"op": "remove", "path": "members[type eq \"Group\"]"}` — compiled with the
/// rules of every other filter, so the store never evaluates SCIM itself. A `$ref` compares
/// against the relative form (`/Users/{id}`): a PATCH has no base URL for the store.
pub(crate) fn member_selection(groups: &ResourceSchema, filter: &Filter) -> Option<Compiled> {
    let members = groups.top_level("members")?;
    let mut c = Compiler {
        rs: groups,
        kind: ResourceKind::Group,
        args: vec![Sql::Null],
        aliases: 0,
    };
    let n = c.alias();
    let inner = c.filter(filter, &Scope::Element(members, Elem::Reference(n)));
    let mut where_sql = format!("m{n}.group_pk = ?1 AND {inner}");
    if where_sql.contains(BASE) {
        let p = c.bind(Sql::Text(String::new()));
        where_sql = where_sql.replace(BASE, &p);
    }
    Some(Compiled {
        where_sql: format!(
            "SELECT r{n}.id FROM memberships AS m{n} JOIN resources AS r{n} ON r{n}.pk = m{n}.member_pk WHERE {where_sql}"
        ),
        order_sql: String::new(),
        args: c.args,
    })
}

/// Where one value sits.
#[derive(Clone)]
enum Slot {
    /// At JSON path `path` (a SQL string literal) in the JSON text `container` (a SQL
    /// expression, NULL when there is no container).
    Json { container: String, path: String },
    /// A row of `json_each` with this alias: the element itself.
    Element(String),
    /// A SQL expression that is TEXT, or NULL when absent (columns, computed values).
    Text(String),
    /// A non-empty object (`meta`, one member of a group): present, never equal to anything.
    Object,
}

/// The values a path has in a resource.
enum Values<'r> {
    /// The path does not resolve: no values.
    None,
    /// At most one value.
    One(Slot, &'r AttrDef),
    /// Any of the rows `SELECT 1 FROM {from} WHERE {cond}`, one value each.
    Any {
        from: String,
        cond: String,
        slot: Slot,
        def: &'r AttrDef,
    },
}

/// What relative paths mean inside `attr[...]`.
enum Scope<'r> {
    Resource,
    /// One element of `parent`.
    Element(&'r AttrDef, Elem),
}

#[derive(Clone)]
enum Elem {
    /// A JSON object (`container` at `prefix`); its sub-attributes are members of it.
    Object { container: String, prefix: String },
    /// The computed `meta`.
    Meta,
    /// One row of the membership join with this alias number.
    Reference(usize),
    /// The element is a plain value (a parent without sub-attributes): only `value` names it.
    Plain(Slot),
}

struct Compiler<'r> {
    rs: &'r ResourceSchema,
    kind: ResourceKind,
    args: Vec<Sql>,
    aliases: usize,
}

/// A JSON path (as a SQL string literal) to `names` under `container` (an extension URN).
/// Every name comes from the schema; all are quoted members.
fn json_path(container: Option<&str>, names: &[&str]) -> String {
    let mut p = String::from("'$");
    for n in container.into_iter().chain(names.iter().copied()) {
        debug_assert!(!n.contains(['\'', '"']), "schema name {n}");
        p.push_str(".\"");
        p.push_str(n);
        p.push('"');
    }
    p.push('\'');
    p
}

fn sql_op(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Gt => ">",
        CompareOp::Ge => ">=",
        CompareOp::Lt => "<",
        CompareOp::Le => "<=",
        _ => "=",
    }
}

/// `parts` joined by `op` as a balanced tree: SQLite parses `a AND b AND c ...` into a tree
/// as deep as the chain is long and refuses expressions deeper than 1000, so a 4 KB filter's
/// chain of 500 terms nests only log2(500) levels this way.
fn balanced(parts: &[String], op: &str) -> String {
    match parts {
        [] => "1".into(),
        [one] => one.clone(),
        _ => {
            let (a, b) = parts.split_at(parts.len() / 2);
            format!("({} {op} {})", balanced(a, op), balanced(b, op))
        }
    }
}

/// Operands of one `and` / `or` chain, flattened (a long chain becomes one SQL level).
fn chain(f: &Filter, and: bool) -> Vec<&Filter> {
    let mut out = Vec::new();
    let mut stack = vec![f];
    while let Some(x) = stack.pop() {
        match (x, and) {
            (Filter::And(a, b), true) | (Filter::Or(a, b), false) => {
                stack.push(b);
                stack.push(a);
            }
            _ => out.push(x),
        }
    }
    out
}

impl<'r> Compiler<'r> {
    /// A parameter for `v`, written `+?N`: the unary plus keeps SQLite from looking at the
    /// bound value while planning. A bare `?N` compared with a column is weighed against the
    /// partial indexes' `WHERE kind = 'User'` whenever the statement has an ORDER BY, and a
    /// statement whose plan looked at a value is re-planned on every execution (that was a
    /// fifth of the server's CPU on userName lookups). `column = +?N` still uses the index.
    fn bind(&mut self, v: Sql) -> String {
        self.args.push(v);
        format!("+?{}", self.args.len())
    }

    fn alias(&mut self) -> usize {
        self.aliases += 1;
        self.aliases
    }

    /// A strictly 0/1 SQL expression for `f`.
    fn filter(&mut self, f: &Filter, scope: &Scope<'r>) -> String {
        match f {
            Filter::And(..) | Filter::Or(..) => {
                let and = matches!(f, Filter::And(..));
                let parts: Vec<String> = chain(f, and)
                    .into_iter()
                    .map(|x| self.filter(x, scope))
                    .collect();
                balanced(&parts, if and { "AND" } else { "OR" })
            }
            Filter::Not(a) => format!("NOT ({})", self.filter(a, scope)),
            Filter::Present(path) => {
                let v = self.values(scope, path, false);
                self.present(v)
            }
            Filter::Compare { path, op, value } => match (op, value) {
                (CompareOp::Eq, Value::Null) => {
                    let v = self.values(scope, path, false);
                    format!("NOT {}", self.present(v))
                }
                (CompareOp::Ne, Value::Null) => {
                    let v = self.values(scope, path, false);
                    self.present(v)
                }
                (CompareOp::Ne, lit) => {
                    format!("NOT {}", self.compare(scope, path, CompareOp::Eq, lit))
                }
                (op, lit) => self.compare(scope, path, *op, lit),
            },
            Filter::ValuePath { path, filter } => match scope {
                Scope::Resource => self.value_path(path, filter),
                Scope::Element(..) => "0".into(),
            },
        }
    }

    fn compare(
        &mut self,
        scope: &Scope<'r>,
        path: &AttrPath,
        op: CompareOp,
        lit: &Value,
    ) -> String {
        if matches!(scope, Scope::Resource) && op == CompareOp::Eq {
            if let Some(fast) = self.indexed_eq(path, lit) {
                return fast;
            }
        }
        match self.values(scope, path, true) {
            Values::None => "0".into(),
            Values::One(slot, def) => match self.predicate(&slot, def, op, lit) {
                Some(p) => format!("COALESCE({p}, 0)"),
                None => "0".into(),
            },
            Values::Any {
                from,
                cond,
                slot,
                def,
            } => match self.predicate(&slot, def, op, lit) {
                Some(p) => format!("EXISTS (SELECT 1 FROM {from} WHERE {cond} AND ({p}))"),
                None => "0".into(),
            },
        }
    }

    fn present(&mut self, values: Values<'r>) -> String {
        match values {
            Values::None => "0".into(),
            Values::One(slot, _) => format!("COALESCE({}, 0)", present_expr(&slot)),
            Values::Any {
                from, cond, slot, ..
            } => format!(
                "EXISTS (SELECT 1 FROM {from} WHERE {cond} AND {})",
                present_expr(&slot)
            ),
        }
    }

    /// `attr[filter]`: any element of `attr` satisfies `filter`.
    fn value_path(&mut self, path: &AttrPath, filter: &Filter) -> String {
        let Some(r) = resolve(self.rs, path) else {
            return "0".into();
        };
        if r.sub.is_some() {
            return "0".into();
        }
        let attr = r.attr;
        if r.container().is_none() {
            match attr.name.as_str() {
                "meta" => return self.filter(filter, &Scope::Element(attr, Elem::Meta)),
                "members" | "groups" => {
                    let n = self.alias();
                    let (from, cond) = self.references_from(n);
                    let inner = self.filter(filter, &Scope::Element(attr, Elem::Reference(n)));
                    return format!("EXISTS (SELECT 1 FROM {from} WHERE {cond} AND {inner})");
                }
                _ => {}
            }
            if let Some(col) = column(&attr.name) {
                let slot = Slot::Text(col.into());
                let inner = self.filter(filter, &Scope::Element(attr, Elem::Plain(slot)));
                return format!("({col} IS NOT NULL AND {inner})");
            }
        }
        let path = json_path(r.container(), &[&attr.name]);
        if attr.multi {
            let e = format!("e{}", self.alias());
            let elem = if attr.sub.is_empty() {
                Elem::Plain(Slot::Element(e.clone()))
            } else {
                Elem::Object {
                    container: format!("CASE WHEN {e}.type = 'object' THEN {e}.value END"),
                    prefix: "'$'".into(),
                }
            };
            let inner = self.filter(filter, &Scope::Element(attr, elem));
            format!("EXISTS (SELECT 1 FROM json_each(resources.doc, {path}) AS {e} WHERE {inner})")
        } else {
            let elem = if attr.sub.is_empty() {
                Elem::Plain(Slot::Json {
                    container: "resources.doc".into(),
                    path: path.clone(),
                })
            } else {
                Elem::Object {
                    container: "resources.doc".into(),
                    prefix: path.clone(),
                }
            };
            let inner = self.filter(filter, &Scope::Element(attr, elem));
            format!("(json_type(resources.doc, {path}) IS NOT NULL AND {inner})")
        }
    }

    /// The memberships joined with the other side, for this resource: `(from, cond)`.
    fn references_from(&self, n: usize) -> (String, String) {
        match self.kind {
            ResourceKind::Group => (
                format!("memberships AS m{n} JOIN resources AS r{n} ON r{n}.pk = m{n}.member_pk"),
                format!("m{n}.group_pk = resources.pk"),
            ),
            ResourceKind::User => (
                format!("memberships AS m{n} JOIN resources AS r{n} ON r{n}.pk = m{n}.group_pk"),
                format!("m{n}.member_pk = resources.pk"),
            ),
        }
    }

    /// A sub-attribute of a rendered reference (`members` of a Group, `groups` of a User),
    /// as `resource::render` computes it.
    fn reference_field(&mut self, n: usize, sub: &AttrDef) -> Option<Slot> {
        let text = match (self.kind, sub.name.as_str()) {
            (_, "value") => format!("r{n}.id"),
            (ResourceKind::Group, "display") => format!("COALESCE(r{n}.display_name, r{n}.user_name)"),
            (ResourceKind::User, "display") => format!("r{n}.display_name"),
            (ResourceKind::Group, "type") => format!("r{n}.kind"),
            (ResourceKind::User, "type") => "'direct'".into(),
            (_, "$ref") => format!(
                "({BASE} || CASE r{n}.kind WHEN 'User' THEN '/Users/' ELSE '/Groups/' END || r{n}.id)"
            ),
            _ => return None,
        };
        Some(Slot::Text(text))
    }

    /// A sub-attribute of the rendered `meta`.
    fn meta_field(&mut self, sub: &AttrDef) -> Option<Slot> {
        let text = match sub.name.as_str() {
            "resourceType" => "resources.kind".into(),
            "created" => "resources.created".into(),
            "lastModified" => "resources.last_modified".into(),
            "version" => "('W/\"' || resources.version || '\"')".into(),
            "location" => format!("({BASE} || '/{}/' || resources.id)", self.kind.endpoint()),
            _ => return None,
        };
        Some(Slot::Text(text))
    }

    /// The values `path` names in `scope`. For comparisons a complex attribute without
    /// sub-attribute stands for its `value`.
    fn values(&mut self, scope: &Scope<'r>, path: &AttrPath, for_compare: bool) -> Values<'r> {
        match scope {
            Scope::Resource => self.resource_values(path, for_compare),
            Scope::Element(parent, elem) => {
                if path.urn.is_some() || path.sub.is_some() {
                    return Values::None;
                }
                if parent.sub.is_empty() {
                    return match elem {
                        Elem::Plain(slot) if path.attr.eq_ignore_ascii_case("value") => {
                            Values::One(slot.clone(), parent)
                        }
                        _ => Values::None,
                    };
                }
                let Some(def) = parent.sub_attr(&path.attr) else {
                    return Values::None;
                };
                let slot = match elem {
                    Elem::Object { container, prefix } => Some(Slot::Json {
                        container: container.clone(),
                        path: format!("{}.\"{}\"'", prefix.trim_end_matches('\''), def.name),
                    }),
                    Elem::Meta => self.meta_field(def),
                    Elem::Reference(n) => self.reference_field(*n, def),
                    Elem::Plain(_) => None,
                };
                match slot {
                    Some(s) => Values::One(s, def),
                    None => Values::None,
                }
            }
        }
    }

    fn resource_values(&mut self, path: &AttrPath, for_compare: bool) -> Values<'r> {
        let Some(mut r) = resolve(self.rs, path) else {
            return Values::None;
        };
        if for_compare && r.sub.is_none() && r.attr.ty == AttrType::Complex {
            match r.attr.sub_attr("value") {
                Some(v) => r.sub = Some(v),
                None => return Values::None,
            }
        }
        let leaf = r.leaf();
        if r.container().is_none() {
            if let Some(col) = column(&r.attr.name) {
                return Values::One(Slot::Text(col.into()), leaf);
            }
            match r.attr.name.as_str() {
                "meta" => {
                    return match r.sub {
                        None => Values::One(Slot::Object, leaf),
                        Some(s) => match self.meta_field(s) {
                            Some(slot) => Values::One(slot, leaf),
                            None => Values::None,
                        },
                    }
                }
                "members" | "groups" => {
                    let n = self.alias();
                    let (from, cond) = self.references_from(n);
                    let slot = match r.sub {
                        None => Some(Slot::Object),
                        Some(s) => self.reference_field(n, s),
                    };
                    return match slot {
                        Some(slot) => Values::Any {
                            from,
                            cond,
                            slot,
                            def: leaf,
                        },
                        None => Values::None,
                    };
                }
                _ => {}
            }
        }
        let attr_path = json_path(r.container(), &[&r.attr.name]);
        if r.attr.multi {
            let e = format!("e{}", self.alias());
            let slot = match r.sub {
                None => Slot::Element(e.clone()),
                Some(s) => Slot::Json {
                    container: format!("CASE WHEN {e}.type = 'object' THEN {e}.value END"),
                    path: json_path(None, &[&s.name]),
                },
            };
            Values::Any {
                from: format!("json_each(resources.doc, {attr_path}) AS {e}"),
                cond: "1".into(),
                slot,
                def: leaf,
            }
        } else {
            let path = match r.sub {
                None => attr_path,
                Some(s) => json_path(r.container(), &[&r.attr.name, &s.name]),
            };
            Values::One(
                Slot::Json {
                    container: "resources.doc".into(),
                    path,
                },
                leaf,
            )
        }
    }

    /// `eq` on an indexed column, written so SQLite uses the index; `None` for other shapes.
    fn indexed_eq(&mut self, path: &AttrPath, lit: &Value) -> Option<String> {
        let r = resolve(self.rs, path)?;
        if r.container().is_some() || r.sub.is_some() {
            return None;
        }
        let Value::String(s) = lit else {
            return None;
        };
        match (self.kind, r.attr.name.as_str()) {
            (_, "id") | (_, "externalId") => {
                let col = if r.attr.name == "id" {
                    "resources.id"
                } else {
                    "resources.external_id"
                };
                let p = self.bind(Sql::Text(s.clone()));
                Some(format!("({col} IS NOT NULL AND {col} = {p})"))
            }
            // The unique name's folded key: exactly `scim_fold(name) = fold(literal)`.
            (ResourceKind::User, "userName") | (ResourceKind::Group, "displayName") => {
                let p = self.bind(Sql::Text(fold_case(s)));
                Some(format!(
                    "(resources.name_key IS NOT NULL AND resources.name_key = {p})"
                ))
            }
            _ => None,
        }
    }

    /// A SQL predicate (may be NULL when the value is absent) for one stored value against
    /// the literal, by the attribute's type; `None` when it can never be true.
    fn predicate(
        &mut self,
        slot: &Slot,
        def: &AttrDef,
        op: CompareOp,
        lit: &Value,
    ) -> Option<String> {
        match def.ty {
            AttrType::Boolean => match (op, lit) {
                (CompareOp::Eq, Value::Bool(b)) => {
                    let want = if *b { "'true'" } else { "'false'" };
                    json_type(slot).map(|t| format!("{t} IS {want}"))
                }
                _ => None,
            },
            AttrType::Integer | AttrType::Decimal => {
                let n = lit.as_f64()?;
                if matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) || !lit.is_number() {
                    return None;
                }
                let t = json_type(slot)?;
                let v = value_expr(slot)?;
                let p = self.bind(Sql::Real(n));
                Some(format!(
                    "({t} IN ('integer', 'real') AND CAST({v} AS REAL) {} {p})",
                    sql_op(op)
                ))
            }
            AttrType::DateTime => {
                let s = lit.as_str()?;
                if matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) {
                    return self.string_predicate(slot, true, op, s);
                }
                let bound = millis_bound(op, s)?;
                let t = is_text(slot)?;
                let v = value_expr(slot)?;
                let p = self.bind(Sql::Integer(bound));
                Some(format!(
                    "({t} AND CAST(round(unixepoch({v}, 'subsec') * 1000) AS INTEGER) {} {p})",
                    sql_op(op)
                ))
            }
            AttrType::String | AttrType::Reference | AttrType::Binary => {
                self.string_predicate(slot, def.case_exact, op, lit.as_str()?)
            }
            AttrType::Complex => None,
        }
    }

    fn string_predicate(
        &mut self,
        slot: &Slot,
        case_exact: bool,
        op: CompareOp,
        lit: &str,
    ) -> Option<String> {
        let t = is_text(slot)?;
        let raw = value_expr(slot)?;
        let (v, lit) = if case_exact {
            (raw, lit.to_string())
        } else {
            (format!("scim_fold({raw})"), fold_case(lit))
        };
        let test = match op {
            CompareOp::Co | CompareOp::Sw | CompareOp::Ew => {
                let n = lit.len();
                if n == 0 {
                    // Every string contains, starts and ends with "".
                    return Some(t);
                }
                let p = self.bind(Sql::Blob(lit.into_bytes()));
                match op {
                    CompareOp::Co => format!("instr(CAST({v} AS BLOB), {p}) > 0"),
                    CompareOp::Sw => format!("substr(CAST({v} AS BLOB), 1, {n}) = {p}"),
                    _ => format!("substr(CAST({v} AS BLOB), -{n}) = {p}"),
                }
            }
            _ => {
                let p = self.bind(Sql::Text(lit));
                format!("{v} {} {p} COLLATE BINARY", sql_op(op))
            }
        };
        Some(format!("({t} AND {test})"))
    }

    /// The rows after `from` in the order [`order`] gives (before it, `backward`): a later
    /// key, or the same key and a later `pk`. A missing key (NULL) sorts above every value.
    fn keyset(&mut self, key: Option<&str>, desc: bool, backward: bool, from: &Bound) -> String {
        let tie = match (backward, from.inclusive) {
            (false, false) => ">",
            (false, true) => ">=",
            (true, false) => "<",
            (true, true) => "<=",
        };
        let pk = self.bind(Sql::Integer(from.position.tie));
        let pk = format!("resources.pk {tie} {pk}");
        let Some(k) = key else {
            return pk;
        };
        // Above `v` in value order, and the same value, for a present or missing `v`.
        let (above, same) = match &from.position.value {
            Some(v) => {
                let v = self.bind(match v {
                    SortValue::Text(t) => Sql::Text(t.clone()),
                    SortValue::Integer(i) => Sql::Integer(*i),
                    SortValue::Real(r) => Sql::Real(*r),
                    SortValue::Boolean(b) => Sql::Integer(i64::from(*b)),
                });
                (
                    format!("({k} IS NULL OR {k} > {v})"),
                    format!("({k} IS NOT NULL AND {k} = {v})"),
                )
            }
            None => ("0".to_string(), format!("({k} IS NULL)")),
        };
        let below = match &from.position.value {
            Some(_) => format!("NOT {above} AND NOT {same}"),
            None => format!("({k} IS NOT NULL)"),
        };
        // Ascending forward and descending backward travel towards higher values.
        let beyond = if desc == backward { above } else { below };
        format!("({beyond} OR ({same} AND {pk}))")
    }

    /// The ORDER BY key for a resolved `sortBy` (see `Sort::resolve`): NULL when missing
    /// (absent, null or "").
    fn sort_key(&mut self, r: &Resolved) -> String {
        let leaf = r.leaf();
        let text = |v: String| {
            if leaf.ty == AttrType::String && !leaf.case_exact {
                format!("NULLIF(scim_fold({v}), '')")
            } else {
                format!("NULLIF({v}, '')")
            }
        };
        if r.container().is_none() {
            if let Some(col) = column(&r.attr.name) {
                return text(col.into());
            }
            match (r.attr.name.as_str(), r.sub.map(|s| s.name.as_str())) {
                ("meta", Some("created")) => {
                    return "unixepoch(resources.created, 'subsec')".into()
                }
                ("meta", Some("lastModified")) => {
                    return "unixepoch(resources.last_modified, 'subsec')".into()
                }
                ("meta", Some("version")) => return "resources.version".into(),
                ("meta", Some("resourceType")) => return "resources.kind".into(),
                ("meta", Some(_)) => return "resources.id".into(),
                ("members" | "groups", Some(sub)) => {
                    let n = self.alias();
                    let (from, cond) = self.references_from(n);
                    let field = match (self.kind, sub) {
                        (_, "value") => format!("r{n}.id"),
                        (ResourceKind::Group, "display") => {
                            format!("COALESCE(r{n}.display_name, r{n}.user_name)")
                        }
                        (ResourceKind::User, "display") => format!("r{n}.display_name"),
                        (ResourceKind::Group, "type") => format!("r{n}.kind"),
                        (ResourceKind::User, "type") => "'direct'".into(),
                        _ => format!(
                            "CASE r{n}.kind WHEN 'User' THEN '/Users/' ELSE '/Groups/' END || r{n}.id"
                        ),
                    };
                    return text(format!(
                        "(SELECT {field} FROM {from} WHERE {cond} ORDER BY r{n}.pk LIMIT 1)"
                    ));
                }
                _ => {}
            }
        }
        let attr_path = json_path(r.container(), &[&r.attr.name]);
        let v = if r.attr.multi {
            let e = format!("e{}", self.alias());
            let obj = format!("CASE WHEN {e}.type = 'object' THEN {e}.value END");
            let field = match r.sub {
                Some(s) => format!("json_extract({obj}, {})", json_path(None, &[&s.name])),
                None => format!("{e}.atom"),
            };
            format!(
                "(SELECT {field} FROM json_each(resources.doc, {attr_path}) AS {e} \
                 ORDER BY json_type({obj}, '$.\"primary\"') IS 'true' DESC, {e}.key LIMIT 1)"
            )
        } else {
            let path = match r.sub {
                Some(s) => json_path(r.container(), &[&r.attr.name, &s.name]),
                None => attr_path,
            };
            format!("json_extract(resources.doc, {path})")
        };
        text(v)
    }
}

/// Top-level attributes kept in their own column, equal to the rendered value.
fn column(name: &str) -> Option<&'static str> {
    match name {
        "id" => Some("resources.id"),
        "externalId" => Some("resources.external_id"),
        "userName" => Some("resources.user_name"),
        "displayName" => Some("resources.display_name"),
        _ => None,
    }
}

/// The JSON type of the value (`json_type` names), NULL when absent.
fn json_type(slot: &Slot) -> Option<String> {
    match slot {
        Slot::Json { container, path } => Some(format!("json_type({container}, {path})")),
        Slot::Element(e) => Some(format!("{e}.type")),
        Slot::Text(x) => Some(format!("CASE WHEN {x} IS NOT NULL THEN 'text' END")),
        Slot::Object => None,
    }
}

/// A strictly 0/1 test that the value is a string.
fn is_text(slot: &Slot) -> Option<String> {
    match slot {
        Slot::Text(x) => Some(format!("{x} IS NOT NULL")),
        other => json_type(other).map(|t| format!("{t} IS 'text'")),
    }
}

/// The value as SQL (text, number); only meaningful after a type test.
fn value_expr(slot: &Slot) -> Option<String> {
    match slot {
        Slot::Json { container, path } => Some(format!("json_extract({container}, {path})")),
        Slot::Element(e) => Some(format!("{e}.atom")),
        Slot::Text(x) => Some(x.clone()),
        Slot::Object => None,
    }
}

/// Whether the value is present: not absent, null, "", [] or {}.
fn present_expr(slot: &Slot) -> String {
    match slot {
        Slot::Json { container, path } => format!(
            "CASE json_type({container}, {path}) \
             WHEN 'text' THEN json_extract({container}, {path}) <> '' \
             WHEN 'array' THEN json_array_length({container}, {path}) > 0 \
             WHEN 'object' THEN json_extract({container}, {path}) <> '{{}}' \
             WHEN 'null' THEN 0 \
             ELSE json_type({container}, {path}) IS NOT NULL END"
        ),
        Slot::Element(e) => format!(
            "CASE {e}.type WHEN 'text' THEN {e}.atom <> '' WHEN 'array' THEN {e}.value <> '[]' \
             WHEN 'object' THEN {e}.value <> '{{}}' WHEN 'null' THEN 0 ELSE 1 END"
        ),
        Slot::Text(x) => format!("COALESCE({x} <> '', 0)"),
        Slot::Object => "1".into(),
    }
}
