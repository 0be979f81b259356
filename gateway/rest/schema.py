"""The schema cache: relations, columns, keys, relationships and functions of the exposed schemas
(https://docs.postgrest.org/en/v14/references/schema_cache.html).

Loaded in one pass over the catalogs, and again on `NOTIFY pgrst, 'reload schema'`. Every identifier the SQL
builder writes comes from here, never from the request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg


@dataclass(frozen=True)
class Column:
    """One column of a relation or of a function's result."""

    name: str
    type: str  # format_type(), e.g. `timestamp with time zone`, `text[]`
    type_oid: int
    nullable: bool = True
    default: str | None = None  # the default expression as the catalog prints it
    category: str = "U"


@dataclass(frozen=True)
class Relationship:
    """How `target` hangs off an origin relation."""

    kind: str  # "m2o" (origin holds the key), "o2m", "o2o" (one-to-one, the target holds the key), "m2m"
    target: Relation
    constraint: str
    origin_columns: tuple[str, ...]
    target_columns: tuple[str, ...]
    junction: Relation | None = None
    junction_origin: tuple[str, ...] = ()  # junction columns pointing at the origin
    junction_target: tuple[str, ...] = ()  # junction columns pointing at the target
    junction_constraints: tuple[str, str] = ("", "")

    @property
    def to_one(self) -> bool:
        """An object (or null) rather than an array."""
        return self.kind in ("m2o", "o2o")


@dataclass(eq=False)
class Relation:
    """A table, view or materialized view."""

    schema: str
    name: str
    kind: str
    columns: dict[str, Column]
    primary_key: tuple[str, ...] = ()
    unique_keys: list[tuple[str, ...]] = field(default_factory=list)
    relationships: list[Relationship] = field(default_factory=list)
    comment: str | None = None

    @property
    def qualified(self) -> str:
        """ "schema"."name", quoted."""
        return f"{quote(self.schema)}.{quote(self.name)}"


@dataclass(frozen=True)
class Parameter:
    """One input parameter of a function."""

    name: str
    type: str
    type_oid: int
    has_default: bool
    variadic: bool = False


@dataclass(eq=False)
class Function:
    """A function callable as /rpc/<name>."""

    schema: str
    name: str
    params: list[Parameter]
    volatility: str  # "i", "s", "v"
    returns_set: bool
    return_type: str
    return_kind: str  # "void", "scalar", "composite"
    result_columns: list[Column] = field(default_factory=list)
    result_relation: Relation | None = None
    comment: str | None = None

    @property
    def qualified(self) -> str:
        """ "schema"."name", quoted."""
        return f"{quote(self.schema)}.{quote(self.name)}"

    @property
    def single_unnamed_json(self) -> bool:
        """One unnamed json/jsonb parameter: the whole POST body goes to it."""
        return (
            len(self.params) == 1 and self.params[0].name == "" and self.params[0].type in ("json", "jsonb")
        )


def quote(name: str) -> str:
    """A double-quoted identifier, with `%` doubled for psycopg's placeholders."""
    return '"' + name.replace('"', '""').replace("%", "%%") + '"'


def text_literal(text: str) -> str:
    """A single-quoted SQL string (standard_conforming_strings, as Postgres defaults), with `%` doubled for
    psycopg's placeholders: for names from the catalog, never for request text (that is bound)."""
    return "'" + text.replace("'", "''").replace("%", "%%") + "'"


@dataclass
class SchemaCache:
    """What /rest/v1 may reach."""

    schemas: tuple[str, ...]
    relations: dict[tuple[str, str], Relation] = field(default_factory=dict)
    functions: dict[tuple[str, str], list[Function]] = field(default_factory=dict)
    types: dict[str, str] = field(default_factory=dict)  # type name or alias -> qualified, quoted name
    role_settings: dict[str, dict[str, str]] = field(default_factory=dict)
    # PostgREST's db-pre-request (`alter role authenticator set pgrst.db_pre_request = 'schema.fn'`): the
    # function called before every request, already quoted; None when not configured.
    pre_request: str | None = None


# What PostgREST replays of a role's ALTER ROLE ... SET, because SET ROLE does not apply it ("Impersonated
# Role Settings", https://docs.postgrest.org/en/v14/references/auth.html); limited to settings any role may
# change.
REPLAYED_ROLE_SETTINGS = frozenset(
    {
        "statement_timeout",
        "lock_timeout",
        "idle_in_transaction_session_timeout",
        "work_mem",
        "default_transaction_isolation",
    }
)
_RELATIONS = """
select c.oid, n.nspname, c.relname, c.relkind, obj_description(c.oid, 'pg_class')
from pg_catalog.pg_class as c join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
where n.nspname = any(%(schemas)s) and c.relkind in ('r', 'v', 'm', 'f', 'p') and not c.relispartition
"""
_COLUMNS = """
select a.attrelid, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.atttypid, not a.attnotnull,
       pg_catalog.pg_get_expr(d.adbin, d.adrelid), t.typcategory
from pg_catalog.pg_attribute as a
join pg_catalog.pg_type as t on t.oid = a.atttypid
left join pg_catalog.pg_attrdef as d on d.adrelid = a.attrelid and d.adnum = a.attnum
where a.attrelid = any(%(oids)s) and a.attnum > 0 and not a.attisdropped
order by a.attrelid, a.attnum
"""
_KEYS = """
select c.conname, c.contype, c.conrelid, c.confrelid,
       array(select a.attname from unnest(c.conkey) with ordinality as k (n, o)
             join pg_catalog.pg_attribute as a on a.attrelid = c.conrelid and a.attnum = k.n order by k.o),
       array(select a.attname from unnest(c.confkey) with ordinality as k (n, o)
             join pg_catalog.pg_attribute as a on a.attrelid = c.confrelid and a.attnum = k.n order by k.o)
from pg_catalog.pg_constraint as c
where c.contype in ('p', 'u', 'f') and c.conrelid = any(%(oids)s)
order by c.conname
"""
_FUNCTIONS = """
select n.nspname, p.proname, p.provolatile, p.proretset, p.prorettype, rt.typtype, rt.typrelid,
       pg_catalog.format_type(p.prorettype, null), p.pronargs, p.pronargdefaults,
       coalesce(p.proallargtypes, p.proargtypes::oid[]), p.proargmodes, p.proargnames,
       obj_description(p.oid, 'pg_proc')
from pg_catalog.pg_proc as p
join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
join pg_catalog.pg_type as rt on rt.oid = p.prorettype
where n.nspname = any(%(schemas)s) and p.prokind = 'f'
"""
_TYPES = """
select t.oid, pg_catalog.format_type(t.oid, null), t.typname, n.nspname, t.typcategory
from pg_catalog.pg_type as t join pg_catalog.pg_namespace as n on n.oid = t.typnamespace
where n.nspname in ('pg_catalog', 'public', 'extensions') or n.nspname = any(%(schemas)s)
"""
_ROLES = """
select r.rolname, coalesce((
    select array_agg(c.setting) from pg_catalog.pg_db_role_setting as s, unnest(s.setconfig) as c (setting)
    where s.setrole = r.oid
    and s.setdatabase in (
        0, (select d.oid from pg_catalog.pg_database as d where d.datname = current_database())
    )
), '{}')
from pg_catalog.pg_roles as r
"""


def load(conn: psycopg.Connection[tuple[object, ...]], schemas: tuple[str, ...]) -> SchemaCache:
    """Read the catalogs into a SchemaCache (one transaction, a handful of queries)."""
    cache = SchemaCache(schemas)
    by_oid: dict[int, Relation] = {}
    params = {"schemas": list(schemas)}
    for oid, schema, name, kind, comment in conn.execute(_RELATIONS, params).fetchall():
        rel = Relation(
            str(schema), str(name), str(kind), {}, comment=comment if isinstance(comment, str) else None
        )
        by_oid[int(str(oid))] = rel
        cache.relations[(rel.schema, rel.name)] = rel
    type_rows = conn.execute(_TYPES, params).fetchall()
    type_names: dict[int, str] = {}
    for oid, formatted, typname, nsp, _category in type_rows:
        qualified = f"{quote(str(nsp))}.{quote(str(typname))}"
        type_names[int(str(oid))] = str(formatted)
        cache.types.setdefault(str(formatted), qualified)
        cache.types.setdefault(str(typname), qualified)
    for alias, target in (
        ("int", "integer"),
        ("float", "double precision"),
        ("decimal", "numeric"),
        ("bool", "boolean"),
        ("varchar", "character varying"),
        ("char", "character"),
    ):
        if target in cache.types:
            cache.types.setdefault(alias, cache.types[target])
    composite_oids = set(by_oid)
    fn_rows = conn.execute(_FUNCTIONS, params).fetchall()
    for row in fn_rows:
        typrelid = int(str(row[6]))
        if typrelid:
            composite_oids.add(typrelid)
    composites: dict[int, list[Column]] = {}
    for relid, name, typ, typoid, nullable, default, category in conn.execute(
        _COLUMNS, {"oids": list(composite_oids)}
    ).fetchall():
        col = Column(
            str(name),
            str(typ),
            int(str(typoid)),
            bool(nullable),
            default if isinstance(default, str) else None,
            str(category),
        )
        composites.setdefault(int(str(relid)), []).append(col)
        if int(str(relid)) in by_oid:
            by_oid[int(str(relid))].columns[col.name] = col
    foreign = []
    for conname, contype, relid, frelid, cols, fcols in conn.execute(
        _KEYS, {"oids": list(by_oid)}
    ).fetchall():
        owner = by_oid.get(int(str(relid)))
        if owner is None:
            continue
        rel = owner
        key = tuple(str(c) for c in cols)  # type: ignore[attr-defined]
        if contype == "p":
            rel.primary_key = key
            rel.unique_keys.append(key)
        elif contype == "u":
            rel.unique_keys.append(key)
        elif int(str(frelid)) in by_oid:
            foreign.append((str(conname), rel, by_oid[int(str(frelid))], key, tuple(str(c) for c in fcols)))  # type: ignore[attr-defined]
    _relationships(foreign)
    for row in fn_rows:
        fn = _function(row, type_names, composites, by_oid)
        cache.functions.setdefault((fn.schema, fn.name), []).append(fn)
    for rolname, settings in conn.execute(_ROLES).fetchall():
        values = {}
        for setting in settings or []:  # type: ignore[attr-defined]
            name, _, value = str(setting).partition("=")
            if name in REPLAYED_ROLE_SETTINGS:
                values[name] = value
            elif name == "pgrst.db_pre_request" and rolname == "authenticator" and value.strip():
                cache.pre_request = ".".join(quote(part) for part in value.strip().split(".", 1))
        cache.role_settings[str(rolname)] = values
    return cache


def _relationships(foreign: list[tuple[str, Relation, Relation, tuple[str, ...], tuple[str, ...]]]) -> None:
    for conname, rel, target, cols, fcols in foreign:
        rel.relationships.append(Relationship("m2o", target, conname, cols, fcols))
        one_to_one = any(set(u) == set(cols) for u in rel.unique_keys)
        target.relationships.append(Relationship("o2o" if one_to_one else "o2m", rel, conname, fcols, cols))
    # many-to-many: a junction whose two foreign keys are both part of its primary key
    by_junction: dict[int, list[tuple[str, Relation, tuple[str, ...], tuple[str, ...]]]] = {}
    for conname, rel, target, cols, fcols in foreign:
        if rel.primary_key and set(cols) <= set(rel.primary_key):
            by_junction.setdefault(id(rel), []).append((conname, target, cols, fcols))
    junctions = {id(rel): rel for _c, rel, _t, _a, _b in foreign}
    for jid, keys in by_junction.items():
        junction = junctions[jid]
        for a in keys:
            for b in keys:
                if a is b:
                    continue
                a_name, a_target, a_cols, a_fcols = a
                b_name, b_target, b_cols, b_fcols = b
                a_target.relationships.append(
                    Relationship(
                        "m2m", b_target, b_name, a_fcols, b_fcols, junction, a_cols, b_cols, (a_name, b_name)
                    )
                )


def _function(
    row: tuple[object, ...],
    type_names: dict[int, str],
    composites: dict[int, list[Column]],
    by_oid: dict[int, Relation],
) -> Function:
    schema, name, volatility, retset, _rettype, _typtype, typrelid, rettype_name = (str(v) for v in row[:8])
    nargs, ndefaults = int(str(row[8])), int(str(row[9]))
    types = [int(str(t)) for t in row[10] or []]  # type: ignore[attr-defined]
    modes = [str(m) for m in row[11]] if row[11] else ["i"] * len(types)  # type: ignore[attr-defined]
    names = [str(n) for n in row[12]] if row[12] else [""] * len(types)  # type: ignore[attr-defined]
    inputs = [(n, t, m) for n, t, m in zip(names, types, modes, strict=False) if m in ("i", "b", "v")]
    params = [
        Parameter(n, type_names.get(t, "unknown"), t, i >= nargs - ndefaults, m == "v")
        for i, (n, t, m) in enumerate(inputs)
    ]
    outs = [
        Column(n, type_names.get(t, "unknown"), t)
        for n, t, m in zip(names, types, modes, strict=False)
        if m in ("o", "b", "t")
    ]
    relid = int(typrelid)
    if rettype_name == "void":
        kind = "void"
    elif relid or (rettype_name == "record" and outs):
        kind = "composite"
    else:
        kind = "scalar"
    columns = composites.get(relid, []) if relid else outs
    comment = row[13] if isinstance(row[13], str) else None
    return Function(
        schema,
        name,
        params,
        volatility,
        retset == "True",
        rettype_name,
        kind,
        list(columns),
        by_oid.get(relid),
        comment,
    )
