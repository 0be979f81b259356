"""Which relationship an embed names (by table, constraint or key column, narrowed by `!hint`s), with
PostgREST's PGRST200/PGRST201 answers and their "Perhaps you meant" hints
(https://docs.postgrest.org/en/v14/references/api/resource_embedding.html)."""

from __future__ import annotations

from busymate.gateway.rest.errors import ApiError
from busymate.gateway.rest.parse import Embed
from busymate.gateway.rest.schema import Relation, Relationship


def resolve(origin: Relation, embed: Embed) -> Relationship:
    """Which relationship `embed` means, by table name, constraint name or key column, narrowed by hints."""
    name = embed.name
    found = [
        r
        for r in origin.relationships
        if r.target.name == name
        or r.constraint == name
        or (r.kind == "m2o" and len(r.origin_columns) == 1 and r.origin_columns[0] == name)
    ]
    for hint in embed.hints:
        found = [
            r
            for r in found
            if hint == r.constraint
            or hint in r.origin_columns
            or hint in r.target_columns
            or (r.junction is not None and (hint == r.junction.name or hint in r.junction_constraints))
        ]
    if not found:
        names = sorted({r.target.name for r in origin.relationships})
        close = [n for n in names if similar(n, name, 1)]
        raise ApiError(
            400,
            "PGRST200",
            f"Could not find a relationship between '{origin.name}' and '{name}' in the schema cache",
            details=(
                f"Searched for a foreign key relationship between '{origin.name}' and '{name}' in the schema "
                f"'{origin.schema}', but no matches were found."
            ),
            hint=f"Perhaps you meant '{close[0]}' instead of '{name}'." if close else None,
        )
    if len(found) > 1:
        raise ApiError(
            300,
            "PGRST201",
            f"Could not embed because more than one relationship was found for '{origin.name}' and '{name}'",
            details=[
                {
                    "cardinality": {
                        "m2o": "many-to-one",
                        "o2m": "one-to-many",
                        "o2o": "one-to-one",
                        "m2m": "many-to-many",
                    }[r.kind],
                    "embedding": f"{origin.name} with {r.target.name}",
                    "relationship": _describe(r),
                }
                for r in found
            ],
            hint=f"Try changing '{name}' to one of the following: "
            + ", ".join(f"'{name}!{r.junction.name if r.junction else r.constraint}'" for r in found)
            + ". Find the desired relationship in the 'details' key.",
        )
    return found[0]


def _describe(r: Relationship) -> str:
    if r.junction is not None:
        first, second = r.junction_constraints
        return f"{r.junction.schema}.{r.junction.name} using {first} and {second}"
    return f"{r.constraint} using {r.target.schema}.{r.target.name}({', '.join(r.target_columns)})"


def similar(a: str, b: str, distance: int) -> bool:
    """A cheap fuzzy match for "Perhaps you meant" hints: at most `distance` letters differ or are missing."""
    if abs(len(a) - len(b)) > distance:
        return False
    return sum(1 for x, y in zip(a, b, strict=False) if x != y) + abs(len(a) - len(b)) <= distance
