"""Every error the server produces reaches the official client as the intended exception.

`fixtures/error_table.json` is written by the server's own test of its error mapping
(`crates/server/src/error.rs`), which fails when the table is out of date. Here each row goes
through the unmodified client's mappers.
"""

import json
from pathlib import Path

import httpx
import pytest
from alter_sdk import App
from alter_sdk.agents import _raise_for_status

ROWS = json.loads((Path(__file__).parent / "fixtures" / "error_table.json").read_text())


@pytest.mark.parametrize("row", ROWS, ids=[row["case"] for row in ROWS])
def test_the_client_raises_the_intended_exception(row):
    response = httpx.Response(
        row["status"],
        content=json.dumps(row["body"]).encode(),
        headers={"content-type": "application/json"},
        request=httpx.Request("GET", "http://127.0.0.1/sdk/x"),
    )
    with pytest.raises(Exception) as raised:
        if row["mapper"] == "agents":
            _raise_for_status(response)
        elif row["mapper"] == "proxy":
            # `/sdk/proxy` and `/sdk/approvals/{id}/result`: the approval codes first.
            app = App(api_key="alter_rk_abcdefghijklmnopqrstuv_iwpykn")
            # (name-mangled and guarded by the client: read past the guard, call unmodified)
            raise object.__getattribute__(app._client, "_VaultClient__map_proxy_error_response")(
                response
            )
        else:
            app = App(api_key="alter_rk_abcdefghijklmnopqrstuv_iwpykn")
            app._client._handle_error_response(response)
    assert type(raised.value).__name__ == row["exception"], row
