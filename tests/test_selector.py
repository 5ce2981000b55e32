"""The subscription selector: own and broadcast events, the application filter, system events always."""

from __future__ import annotations

import pytest

from nfmp_client.selector import SYSTEM_OBJECT_TYPES, build_selector, validate_client_id


class TestClientId:
    @pytest.mark.parametrize("client_id", ["oss1@1", "alarm-mirror.prod@42", "a_b:c@x-y"])
    def test_valid(self, client_id: str) -> None:
        """name@ID forms are accepted as they are."""
        assert validate_client_id(client_id) == client_id

    @pytest.mark.parametrize(
        "client_id", ["", "oss1", "@1", "oss1@", "a@b@c", "o'ss@1", "oss 1@1", "oss\n@1"]
    )
    def test_invalid(self, client_id: str) -> None:
        """Anything else is refused with the expected form in the message."""
        with pytest.raises(ValueError, match="name@ID"):
            validate_client_id(client_id)


class TestBuildSelector:
    def test_without_filter(self) -> None:
        """Without a filter: Nokia's basic selector, system events admitted with or without ALA_clientId."""
        assert build_selector("oss1@1") == (
            "ALA_clientId in ('oss1@1','') OR "
            "MTOSI_objectType in ('KeepAliveEvent','StateChangeEvent','TerminateClientSession')"
        )

    def test_system_events_pass_any_filter(self) -> None:
        """The filter narrows data events only; the system event types are OR-ed in unconditionally."""
        selector = build_selector("oss1@1", "ALA_category = 'FAULT'")

        assert selector == (
            "(ALA_clientId in ('oss1@1','') AND (ALA_category = 'FAULT')) OR MTOSI_objectType in "
            "('KeepAliveEvent','StateChangeEvent','TerminateClientSession')"
        )
        for object_type in SYSTEM_OBJECT_TYPES:
            assert f"'{object_type}'" in selector

    def test_filter_cannot_escape_its_parentheses(self) -> None:
        """A filter that would close the group early (and so drop the client-id clause) is refused."""
        with pytest.raises(ValueError, match="parenthesis"):
            build_selector("oss1@1", "1=1) OR (1=1")

    @pytest.mark.parametrize(
        ("text", "reason"),
        [
            ("ALA_category = 'FAULT", "unterminated"),
            ("(ALA_category = 'FAULT'", "open"),
            ("ALA_category = 'FAULT'; drop", "';'"),
            ("ALA_category = 'FAULT' -- comment", "'--'"),
        ],
    )
    def test_broken_filters(self, text: str, reason: str) -> None:
        """Structurally broken filters are refused with the reason."""
        with pytest.raises(ValueError, match=reason):
            build_selector("oss1@1", text)

    def test_literals_may_hold_anything(self) -> None:
        """Parentheses, semicolons and doubled quotes inside string literals are fine."""
        text = "MTOSI_objectName LIKE '%(a;b)%' OR ALA_alarmType = 'it''s'"

        assert f"AND ({text})) OR" in build_selector("oss1@1", text)
