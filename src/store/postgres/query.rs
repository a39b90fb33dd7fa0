//! Filters and sorts compiled to SQL over `resources` (`doc` is `jsonb`) and `memberships`,
//! with exactly the semantics of the in-memory evaluator [`crate::scim::filter::matches`] on
//! the rendered resource: the SQLite compiler's rules (`sqlite/query.rs`) in PostgreSQL's
//! dialect.
//!
//! - No client text ever becomes SQL text: literals are parameters (`$n` with an explicit
//!   type), and the only names in the SQL are fixed column names and JSON keys from the
//!   schema's canonical names, written as SQL string literals.
//! - Every compiled predicate is strictly true or false, never NULL, so `not (...)` and `ne`
//!   are true when the attribute is absent, as in the evaluator.
//! - Strings compare by code point (`COLLATE "C"`: bytes of UTF-8), whatever the database's
//!   collation; `co`/`sw`/`ew` are `strpos`/`starts_with`/a suffix, so `%`, `_`, `\` and
//!   quotes are ordinary characters.
//! - `caseExact: false` attributes compare `scim_fold(stored)` (ICU's root lower-casing, which
//!   is Rust's `str::to_lowercase`; see the migrations) with the literal folded in Rust.
//! - `userName eq` (Users), `displayName eq` (Groups), `externalId eq` and `id eq` use their
//!   indexes; the unique names through `name_key`.
//! - dateTimes (stored RFC 3339) compare as integer milliseconds (`scim_millis`), the
//!   literal rounded towards the right side for each operator, as on SQLite.
//!
//! Documents are assumed to have the shapes validation gives them; values of the wrong JSON
//! type never match, and a multi-valued attribute that is not an array has no values.

use postgres::types::ToSql;
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

/// A parameter of a compiled query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Text(String),
    Float(f64),
    Int(i64),
    Bool(bool),
}

impl Arg {
    pub(crate) fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Arg::Text(s) => s,
            Arg::Float(f) => f,
            Arg::Int(i) => i,
            Arg::Bool(b) => b,
        }
    }
}

/// The SQL type of a sort key, to read its value from a row and to bind a position's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyType {
    Text,
    Int,
    Float,
    Bool,
}

/// A sort key: its expression and type.
pub(crate) struct SortKey {
    pub sql: String,
    pub ty: KeyType,
}

/// The parameters as the driver takes them.
pub(crate) fn params(args: &[Arg]) -> Vec<&(dyn ToSql + Sync)> {
    args.iter().map(Arg::as_sql).collect()
}

/// A compiled list query: the WHERE clause and ORDER BY terms over `resources`, and the
/// parameters they number (`$1` is the tenant).
pub(crate) struct Compiled {
    pub where_sql: String,
    pub order_sql: String,
    pub args: Vec<Arg>,
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
        Some((key, desc)) => order(Some(&key.sql), desc, false),
        None => order(None, false, false),
    };
    Compiled {
        where_sql,
        order_sql,
        args: c.args,
    }
}

/// A compiled keyset page ([`Seek`]): the WHERE clause with the position's condition, the
/// ORDER BY in the direction of travel, and the sort key (none without a sort), whose value
/// in each row is the row's position.
pub(crate) struct Seeking {
    pub compiled: Compiled,
    pub key: Option<SortKey>,
}

/// A position of another type than the sort key's: only a cursor from before a change of
/// the attribute's declared type could carry one.
#[derive(Debug)]
pub(crate) struct MismatchedPosition;

pub(crate) fn compile_seek(
    tenant: &str,
    rs: &ResourceSchema,
    filter: Option<&Filter>,
    sort: Option<&Sort>,
    seek: &Seek,
    base: &str,
) -> Result<Seeking, MismatchedPosition> {
    let (mut c, mut where_sql) = selection(tenant, rs, filter, base);
    let sorting = sorting(&mut c, sort);
    let (key, desc) = match &sorting {
        Some((key, desc)) => (Some(key), *desc),
        None => (None, false),
    };
    if let Some(from) = &seek.from {
        where_sql.push_str(" AND ");
        where_sql.push_str(&c.keyset(key, desc, seek.backward, from)?);
    }
    let order_sql = order(key.map(|k| k.sql.as_str()), desc, seek.backward);
    Ok(Seeking {
        compiled: Compiled {
            where_sql,
            order_sql,
            args: c.args,
        },
        key: sorting.map(|(k, _)| k),
    })
}

/// The compiler and the WHERE clause of a list query (`$1` is the tenant).
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
        args: vec![Arg::Text(tenant.to_string())],
        aliases: 0,
    };
    // The kind is one of two fixed names, written literally so the partial indexes
    // (`WHERE kind = 'User'`) apply.
    let mut where_sql = format!(
        "resources.tenant = $1::text AND resources.kind = '{}'",
        kind.name()
    );
    if let Some(f) = filter {
        where_sql.push_str(" AND ");
        where_sql.push_str(&c.filter(f, &Scope::Resource));
    }
    if where_sql.contains(BASE) {
        let p = c.bind(Arg::Text(base.to_string()));
        where_sql = where_sql.replace(BASE, &p);
    }
    (c, where_sql)
}

/// The sort key and whether it descends, when `sort` names a sortable attribute of the type.
fn sorting(c: &mut Compiler, sort: Option<&Sort>) -> Option<(SortKey, bool)> {
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

/// The ids of the members of a group (its pk is `$1`) that a value filter on `members`
/// selects, compiled with the rules of every other filter. A `$ref` compares against the
/// relative form (`/Users/{id}`): a PATCH has no base URL for the store.
pub(crate) fn member_selection(groups: &ResourceSchema, filter: &Filter) -> Option<Compiled> {
    let members = groups.top_level("members")?;
    let mut c = Compiler {
        rs: groups,
        kind: ResourceKind::Group,
        args: vec![Arg::Int(0)],
        aliases: 0,
    };
    let n = c.alias();
    let inner = c.filter(filter, &Scope::Element(members, Elem::Reference(n)));
    let mut where_sql = format!("m{n}.group_pk = $1::bigint AND {inner}");
    if where_sql.contains(BASE) {
        let p = c.bind(Arg::Text(String::new()));
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
    /// A `jsonb` expression, NULL when absent.
    Json(String),
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
    /// A JSON object (a `jsonb` expression); its sub-attributes are members of it.
    Object(String),
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
    args: Vec<Arg>,
    aliases: usize,
}

/// A JSON key (from the schema, never client text) as a SQL string literal.
fn key(name: &str) -> String {
    debug_assert!(!name.contains('\''), "schema name {name}");
    format!("'{}'", name.replace('\'', "''"))
}

/// `container -> 'a' -> 'b'`: the `jsonb` at `names` under `container`, through the
/// extension object `urn` when there is one.
fn json_at(container: &str, urn: Option<&str>, names: &[&str]) -> String {
    let mut out = format!("({container})");
    for n in urn.into_iter().chain(names.iter().copied()) {
        out.push_str(" -> ");
        out.push_str(&key(n));
    }
    out
}

/// The rows of a multi-valued attribute: its elements when it is an array, none otherwise.
fn elements(json: &str, alias: &str) -> String {
    format!(
        "jsonb_array_elements(CASE jsonb_typeof({json}) WHEN 'array' THEN {json} END) WITH ORDINALITY AS {alias}(value, i)"
    )
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

/// `parts` joined by `op` as a balanced tree, so a long chain never nests deeply.
fn balanced(parts: &[String], op: &str) -> String {
    match parts {
        [] => "true".into(),
        [one] => one.clone(),
        _ => {
            let (a, b) = parts.split_at(parts.len() / 2);
            format!("({} {op} {})", balanced(a, op), balanced(b, op))
        }
    }
}

/// Operands of one `and` / `or` chain, flattened.
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
    /// A parameter for `v`, with its type written out.
    fn bind(&mut self, v: Arg) -> String {
        let ty = match v {
            Arg::Text(_) => "text",
            Arg::Float(_) => "float8",
            Arg::Int(_) => "bigint",
            Arg::Bool(_) => "boolean",
        };
        self.args.push(v);
        format!("${}::{ty}", self.args.len())
    }

    fn alias(&mut self) -> usize {
        self.aliases += 1;
        self.aliases
    }

    /// A strictly true/false SQL expression for `f`.
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
                Scope::Element(..) => "false".into(),
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
            Values::None => "false".into(),
            Values::One(slot, def) => match self.predicate(&slot, def, op, lit) {
                Some(p) => format!("COALESCE({p}, false)"),
                None => "false".into(),
            },
            Values::Any {
                from,
                cond,
                slot,
                def,
            } => match self.predicate(&slot, def, op, lit) {
                Some(p) => format!("EXISTS (SELECT 1 FROM {from} WHERE {cond} AND ({p}))"),
                None => "false".into(),
            },
        }
    }

    fn present(&mut self, values: Values<'r>) -> String {
        match values {
            Values::None => "false".into(),
            Values::One(slot, _) => format!("COALESCE({}, false)", present_expr(&slot)),
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
            return "false".into();
        };
        if r.sub.is_some() {
            return "false".into();
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
        let json = json_at("resources.doc", r.container(), &[&attr.name]);
        if attr.multi {
            let e = format!("e{}", self.alias());
            let value = format!("{e}.value");
            let elem = if attr.sub.is_empty() {
                Elem::Plain(Slot::Json(value))
            } else {
                Elem::Object(value)
            };
            let inner = self.filter(filter, &Scope::Element(attr, elem));
            format!(
                "EXISTS (SELECT 1 FROM {} WHERE {inner})",
                elements(&json, &e)
            )
        } else {
            let elem = if attr.sub.is_empty() {
                Elem::Plain(Slot::Json(json.clone()))
            } else {
                Elem::Object(json.clone())
            };
            let inner = self.filter(filter, &Scope::Element(attr, elem));
            format!("({json} IS NOT NULL AND {inner})")
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
            (ResourceKind::Group, "display") => {
                format!("COALESCE(r{n}.display_name, r{n}.user_name)")
            }
            (ResourceKind::User, "display") => format!("r{n}.display_name"),
            (ResourceKind::Group, "type") => format!("r{n}.kind"),
            (ResourceKind::User, "type") => "'direct'::text".into(),
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
                    Elem::Object(container) => {
                        Some(Slot::Json(json_at(container, None, &[&def.name])))
                    }
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
        let attr_json = json_at("resources.doc", r.container(), &[&r.attr.name]);
        if r.attr.multi {
            let e = format!("e{}", self.alias());
            let slot = match r.sub {
                None => Slot::Json(format!("{e}.value")),
                Some(s) => Slot::Json(json_at(&format!("{e}.value"), None, &[&s.name])),
            };
            Values::Any {
                from: elements(&attr_json, &e),
                cond: "true".into(),
                slot,
                def: leaf,
            }
        } else {
            let json = match r.sub {
                None => attr_json,
                Some(s) => json_at("resources.doc", r.container(), &[&r.attr.name, &s.name]),
            };
            Values::One(Slot::Json(json), leaf)
        }
    }

    /// `eq` on an indexed column, written so PostgreSQL uses the index; `None` for other
    /// shapes.
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
                let p = self.bind(Arg::Text(s.clone()));
                Some(format!("({col} IS NOT NULL AND {col} = {p})"))
            }
            // The unique name's folded key: exactly `scim_fold(name) = fold(literal)`.
            (ResourceKind::User, "userName") | (ResourceKind::Group, "displayName") => {
                let p = self.bind(Arg::Text(fold_case(s)));
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
            AttrType::Boolean => match (op, lit, slot) {
                (CompareOp::Eq, Value::Bool(b), Slot::Json(j)) => {
                    Some(format!("({j} = '{b}'::jsonb)"))
                }
                _ => None,
            },
            AttrType::Integer | AttrType::Decimal => {
                let n = lit.as_f64()?;
                if matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) || !lit.is_number() {
                    return None;
                }
                let Slot::Json(j) = slot else {
                    return None;
                };
                let p = self.bind(Arg::Float(n));
                Some(format!(
                    "(jsonb_typeof({j}) = 'number' AND ({j})::float8 {} {p})",
                    sql_op(op)
                ))
            }
            AttrType::DateTime => {
                let s = lit.as_str()?;
                if matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) {
                    return self.string_predicate(slot, true, op, s);
                }
                let bound = millis_bound(op, s)?;
                let (t, v) = (is_text(slot)?, text_expr(slot)?);
                let p = self.bind(Arg::Int(bound));
                Some(format!("({t} AND scim_millis({v}) {} {p})", sql_op(op)))
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
        let raw = text_expr(slot)?;
        let (v, lit) = if case_exact {
            (format!("({raw} COLLATE \"C\")"), lit.to_string())
        } else {
            (format!("(scim_fold({raw}) COLLATE \"C\")"), fold_case(lit))
        };
        let test = match op {
            CompareOp::Co | CompareOp::Sw | CompareOp::Ew => {
                if lit.is_empty() {
                    // Every string contains, starts and ends with "".
                    return Some(t);
                }
                let p = self.bind(Arg::Text(lit));
                match op {
                    CompareOp::Co => format!("strpos({v}, {p}) > 0"),
                    CompareOp::Sw => format!("starts_with({v}, {p})"),
                    _ => format!("right({v}, char_length({p})) = {p}"),
                }
            }
            _ => {
                let p = self.bind(Arg::Text(lit));
                format!("{v} {} {p}", sql_op(op))
            }
        };
        Some(format!("({t} AND {test})"))
    }

    /// The ORDER BY key for a resolved `sortBy` (see `Sort::resolve`): NULL when missing
    /// (absent, null or "").
    /// The rows after `from` in the order [`order`] gives (before it, `backward`): a later
    /// key, or the same key and a later `pk`. A missing key (NULL) sorts above every value.
    fn keyset(
        &mut self,
        key: Option<&SortKey>,
        desc: bool,
        backward: bool,
        from: &Bound,
    ) -> Result<String, MismatchedPosition> {
        let tie = match (backward, from.inclusive) {
            (false, false) => ">",
            (false, true) => ">=",
            (true, false) => "<",
            (true, true) => "<=",
        };
        let pk = self.bind(Arg::Int(from.position.tie));
        let pk = format!("resources.pk {tie} {pk}");
        let Some(key) = key else {
            return Ok(pk);
        };
        let k = &key.sql;
        // Above `v` in value order, and the same value, for a present or missing `v`.
        let (above, same) = match &from.position.value {
            Some(v) => {
                let arg = match (key.ty, v) {
                    (KeyType::Text, SortValue::Text(t)) => Arg::Text(t.clone()),
                    (KeyType::Int, SortValue::Integer(i)) => Arg::Int(*i),
                    (KeyType::Float, SortValue::Real(r)) => Arg::Float(*r),
                    (KeyType::Float, SortValue::Integer(i)) => Arg::Float(*i as f64),
                    (KeyType::Bool, SortValue::Boolean(b)) => Arg::Bool(*b),
                    _ => return Err(MismatchedPosition),
                };
                let v = self.bind(arg);
                (
                    format!("({k} IS NULL OR {k} > {v})"),
                    format!("({k} IS NOT NULL AND {k} = {v})"),
                )
            }
            None => ("false".to_string(), format!("({k} IS NULL)")),
        };
        let below = match &from.position.value {
            Some(_) => format!("NOT {above} AND NOT {same}"),
            None => format!("({k} IS NOT NULL)"),
        };
        // Ascending forward and descending backward travel towards higher values.
        let beyond = if desc == backward { above } else { below };
        Ok(format!("({beyond} OR ({same} AND {pk}))"))
    }

    fn sort_key(&mut self, r: &Resolved) -> SortKey {
        let leaf = r.leaf();
        let fold = leaf.ty == AttrType::String && !leaf.case_exact;
        let text = |v: String| {
            if fold {
                format!("NULLIF(scim_fold({v}), '') COLLATE \"C\"")
            } else {
                format!("NULLIF({v}, '') COLLATE \"C\"")
            }
        };
        let key = |sql: String, ty: KeyType| SortKey { sql, ty };
        if r.container().is_none() {
            if let Some(col) = column(&r.attr.name) {
                return key(text(col.into()), KeyType::Text);
            }
            match (r.attr.name.as_str(), r.sub.map(|s| s.name.as_str())) {
                ("meta", Some("created")) => {
                    return key("scim_millis(resources.created)".into(), KeyType::Int)
                }
                ("meta", Some("lastModified")) => {
                    return key("scim_millis(resources.last_modified)".into(), KeyType::Int)
                }
                ("meta", Some("version")) => return key("resources.version".into(), KeyType::Int),
                ("meta", Some("resourceType")) => {
                    return key("resources.kind".into(), KeyType::Text)
                }
                ("meta", Some(_)) => return key("resources.id".into(), KeyType::Text),
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
                        (ResourceKind::User, "type") => "'direct'::text".into(),
                        _ => format!(
                            "CASE r{n}.kind WHEN 'User' THEN '/Users/' ELSE '/Groups/' END || r{n}.id"
                        ),
                    };
                    return key(
                        text(format!(
                            "(SELECT {field} FROM {from} WHERE {cond} ORDER BY r{n}.pk LIMIT 1)"
                        )),
                        KeyType::Text,
                    );
                }
                _ => {}
            }
        }
        let attr_json = json_at("resources.doc", r.container(), &[&r.attr.name]);
        let json = if r.attr.multi {
            let e = format!("e{}", self.alias());
            let field = match r.sub {
                Some(s) => json_at(&format!("{e}.value"), None, &[&s.name]),
                None => format!("{e}.value"),
            };
            // The primary element, else the first.
            format!(
                "(SELECT {field} FROM {} ORDER BY ({e}.value -> 'primary') = 'true'::jsonb IS TRUE DESC, {e}.i LIMIT 1)",
                elements(&attr_json, &e)
            )
        } else {
            match r.sub {
                Some(s) => json_at("resources.doc", r.container(), &[&r.attr.name, &s.name]),
                None => attr_json,
            }
        };
        match leaf.ty {
            AttrType::Boolean => key(
                format!("CASE jsonb_typeof({json}) WHEN 'boolean' THEN ({json})::boolean END"),
                KeyType::Bool,
            ),
            AttrType::Integer | AttrType::Decimal => key(
                format!("CASE jsonb_typeof({json}) WHEN 'number' THEN ({json})::float8 END"),
                KeyType::Float,
            ),
            _ => key(
                text(format!(
                    "CASE WHEN jsonb_typeof({json}) IN ('string', 'number', 'boolean') THEN {json} #>> '{{}}' END"
                )),
                KeyType::Text,
            ),
        }
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

/// A test (NULL when absent) that the value is a string.
fn is_text(slot: &Slot) -> Option<String> {
    match slot {
        Slot::Text(x) => Some(format!("({x} IS NOT NULL)")),
        Slot::Json(j) => Some(format!("(jsonb_typeof({j}) = 'string')")),
        Slot::Object => None,
    }
}

/// The value as text; only meaningful after [`is_text`].
fn text_expr(slot: &Slot) -> Option<String> {
    match slot {
        Slot::Text(x) => Some(x.clone()),
        Slot::Json(j) => Some(format!("({j} #>> '{{}}')")),
        Slot::Object => None,
    }
}

/// Whether the value is present (NULL when absent): not null, "", [] or {}.
fn present_expr(slot: &Slot) -> String {
    match slot {
        Slot::Json(j) => format!(
            "(CASE jsonb_typeof({j}) WHEN 'string' THEN {j} <> '\"\"'::jsonb \
             WHEN 'array' THEN {j} <> '[]'::jsonb WHEN 'object' THEN {j} <> '{{}}'::jsonb \
             WHEN 'null' THEN false ELSE {j} IS NOT NULL END)"
        ),
        Slot::Text(x) => format!("({x} <> '')"),
        Slot::Object => "true".into(),
    }
}

#[cfg(test)]
mod tests {
    use crate::scim::filter::fold_case;
    use crate::store::postgres::test_support::*;

    /// `scim_fold` (ICU's lower-casing) against Rust's `str::to_lowercase` for every
    /// character that has a lower-case mapping or is changed by one, alone and in the contexts
    /// that change mappings (Greek final sigma), so that `eq` on a stored value agrees with
    /// the evaluator. Characters whose mapping a newer Unicode added (Rust's tables may be
    /// newer than the server's ICU) are the only divergence allowed, and are listed.
    #[test]
    fn fold_case_agrees_with_rust() {
        let Some((_db, s)) = store() else { return };
        let mut samples: Vec<String> = (0..=0x10FFFFu32)
            .filter_map(char::from_u32)
            .filter(|c| {
                let one = c.to_string();
                one.to_lowercase() != one || one.to_uppercase() != one
            })
            .map(|c| c.to_string())
            .collect();
        for extra in [
            "ΣΑΣ",
            "ΑΣ Α",
            "Σ",
            "ΑΣ.",
            "Α.Σ",
            "ΑΣ'Σ",
            "İstanbul",
            "MIKE",
            "mi\u{212a}e",
            "Straße",
            "ǅ",
            "ΌΣΟΣ ΚΑΙ",
            "A\u{0345}Σ",
            "Ω\u{0301}Σ",
            "Hello World",
        ] {
            samples.push(extra.to_string());
        }
        let folded: Vec<(String, String)> = s
            .read(|db| {
                Ok(db
                    .query(
                        "SELECT t, scim_fold(t) FROM unnest($1::text[]) AS t",
                        &[&samples],
                    )?
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect())
            })
            .unwrap();
        assert_eq!(folded.len(), samples.len());
        let differ: Vec<String> = folded
            .iter()
            .filter(|(t, f)| fold_case(t) != *f)
            .map(|(t, f)| {
                format!(
                    "{t:?} {:?}: rust {:?}, postgres {f:?}",
                    t.chars()
                        .map(|c| format!("U+{:04X}", c as u32))
                        .collect::<Vec<_>>(),
                    fold_case(t)
                )
            })
            .collect();
        // Unicode 16 and 17 (Rust's tables) added these case pairs after ICU 72 (Unicode 15, Debian
        // 12's PostgreSQL): Latin additions, Garay and Kirat Rai.
        let newer_than_icu = |t: &str| {
            t.chars().all(|c| {
                matches!(
                    c as u32,
                    0xA7CB..=0xA7DC | 0x1C89..=0x1C8A | 0x10D50..=0x10D85 | 0x16EA0..=0x16EBB
                )
            })
        };
        let unexpected: Vec<&String> = differ
            .iter()
            .zip(folded.iter().filter(|(t, f)| fold_case(t) != *f))
            .filter(|(_, (t, _))| !newer_than_icu(t))
            .map(|(line, _)| line)
            .collect();
        assert!(
            unexpected.is_empty(),
            "{} of {} samples fold differently:\n{}",
            unexpected.len(),
            samples.len(),
            unexpected
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
        eprintln!(
            "scim_fold equals str::to_lowercase on {} of {} samples; differing (newer Unicode): {differ:?}",
            samples.len() - differ.len(),
            samples.len()
        );
    }
}
