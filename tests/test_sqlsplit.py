"""The statement splitter must never cut inside a literal, an identifier, a comment or a function body."""

from __future__ import annotations

from busymate.stack.sqlsplit import split_statements


def texts(sql: str) -> list[str]:
    return [s.text for s in split_statements(sql)]


def test_plain_statements_and_their_lines() -> None:
    statements = split_statements("select 1;\n\n  select 2;\nselect 3")
    assert [(s.text, s.line) for s in statements] == [("select 1", 1), ("select 2", 3), ("select 3", 4)]


def test_semicolons_inside_quotes_identifiers_and_comments_stay() -> None:
    sql = (
        "select 'a;b', \"c;d\" from t; -- trailing; comment\n"
        "/* block; /* nested; */ still; */ select E'it\\'s;';\n"
        "select $$x;y$$, $tag$ $$; $tag$;\n"
    )
    assert texts(sql) == [
        "select 'a;b', \"c;d\" from t",
        "-- trailing; comment\n/* block; /* nested; */ still; */ select E'it\\'s;'",
        "select $$x;y$$, $tag$ $$; $tag$",
    ]


def test_doubled_quotes_and_positional_parameters() -> None:
    assert texts("select 'it''s; fine';select $1;") == ["select 'it''s; fine'", "select $1"]


def test_comment_only_chunks_are_dropped() -> None:
    assert texts("-- nothing here;\n/* nor; here */;\n") == []
