"""`Prefer: return=headers-only` on an insert answers 201 with a Location naming the new row by its primary
key (PostgREST's shape, `/<table>?<pk>=eq.<value>`). The key's column names come from the catalog and are
written into the statement as SQL strings: a name with a quote or a percent sign must still make a valid
statement."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from busymate.settings import Settings
from tests.world import World

ODD = """
create table public.odd_keys ("it's 100%" integer primary key, label text);
alter table public.odd_keys enable row level security;
grant select, insert on public.odd_keys to authenticated;
create policy "odd_keys: anyone signed in" on public.odd_keys for all to authenticated
using (true) with check (true);
"""


@pytest.fixture(scope="module")
def odd_table(stack: Settings, world: World) -> Iterator[dict[str, str]]:
    """public.odd_keys, once the schema cache has it; dropped afterwards. Yields a member's headers."""
    headers = {"apikey": world.anon_key, "authorization": f"Bearer {world.tokens['member']}"}
    with psycopg.connect(stack.db_url(), autocommit=True) as conn:
        conn.execute(ODD)
        conn.execute("notify pgrst, 'reload schema'")
    try:
        for _ in range(200):
            if httpx.get(f"{stack.api_url}/rest/v1/odd_keys?limit=0", headers=headers).status_code == 200:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the schema cache never picked up public.odd_keys")
        yield headers
    finally:
        with psycopg.connect(stack.db_url(), autocommit=True) as conn:
            conn.execute("drop table if exists public.odd_keys")
            conn.execute("notify pgrst, 'reload schema'")


def test_a_primary_key_named_with_a_quote_and_a_percent_still_gives_a_location(
    stack: Settings, odd_table: dict[str, str]
) -> None:
    answer = httpx.post(
        f"{stack.api_url}/rest/v1/odd_keys",
        headers={**odd_table, "Prefer": "return=headers-only"},
        json={"it's 100%": 7, "label": "seven"},
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers["location"] == "/odd_keys?it's 100%=eq.7"
    rows = httpx.get(f"{stack.api_url}/rest/v1/odd_keys?select=label", headers=odd_table).json()
    assert rows == [{"label": "seven"}]
