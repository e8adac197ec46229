"""storage.search on SQLite and PostgreSQL: every query shape, bad input, ordering, filters, and
that it is the index that answers (never a scan of the RO table)."""
from __future__ import annotations

from datetime import timedelta

import pytest

from storage import search
from storage.db import database, is_postgres
from storage.models import Participant, RepairOrder, RoSearchTerm, utcnow
from tests.factories import make_ro
from tests.test_storage import db  # noqa: F401 - fixture: a fresh database of each kind


def ro(last: str, first: str = "Jean", phone: str | None = "+15145550142", **fields) -> RepairOrder:
    row = make_ro(customer_first_name=first, customer_last_name=last, mobile_phone=phone,
                  phone_digits=(phone or "").lstrip("+"), **fields)
    search.index_ro(row)
    return row


def names(text, **filters) -> list[str]:
    return [r.customer_last_name for r in search.find(text, **filters).items]


@pytest.fixture
def shop(db):
    return {
        "belanger": ro("Bélanger-Côté", "Hélène", "+14385550199", ro_number="48213", tag_number="T-213"),
        "tremblay": ro("Tremblay", "Jean", "+15145550142", ro_number="48214", tag_number="A77"),
        "obrien": ro("O'Brien", "Pat", None, ro_number="50001", tag_number=None),
        "lefebvre": ro("LEFEBVRE", "Zoé", "+18195551234", ro_number="RO-7001", tag_number="t9"),
    }


@pytest.mark.parametrize("text", ["belanger", "Bélanger", "BÉLANGER", "bel", "cote", "Côté", "helene", "hélène bél", "bélanger-côté"])
def test_names_are_case_and_accent_insensitive_first_last_and_partial(shop, text):
    assert names(text) == ["Bélanger-Côté"]


def test_every_word_must_match_the_start_of_a_name_word(shop):
    assert names("jean tremblay") == ["Tremblay"] and names("tremblay jean") == ["Tremblay"]
    assert names("jean bélanger") == []
    assert names("langer") == []  # a word's start, not its middle: that is what keeps it indexed


def test_apostrophes_and_ligatures(shop):
    assert names("obrien") == names("o'brien") == names("O’Brien") == names("brien") == ["O'Brien"]
    assert names("zoe") == ["LEFEBVRE"]


@pytest.mark.parametrize("text", ["514 555-0142", "(514) 555-0142", "+1 514 555 0142", "15145550142", "514.555.0142",
                                  "5550142", "0142"])
def test_phones_in_any_format_and_their_last_digits(shop, text):
    assert names(text) == ["Tremblay"]


def test_three_digits_are_not_a_phone(shop):
    assert names("142") == []


def test_ro_and_tag_numbers_exact_and_prefix(shop):
    assert names("48213") == ["Bélanger-Côté"]
    assert sorted(names("4821")) == ["Bélanger-Côté", "Tremblay"]
    assert names("RO 48214") == ["Tremblay"] and names("#48214") == ["Tremblay"]
    assert names("t213") == names("T-213") == names("T2") == ["Bélanger-Côté"]
    assert names("a77") == ["Tremblay"]
    assert names("ro7001") == ["LEFEBVRE"] and names("RO-70") == ["LEFEBVRE"]


@pytest.mark.parametrize("text", [None, "", " ", "a", "é", "7", "%", "_", "'", "%%", "__", "''", " - "])
def test_empty_or_one_character_is_a_hint_not_a_scan(shop, text):
    if text is None:
        assert len(search.find(None).items) == 4  # no text at all is the plain list, not a search
        return
    with pytest.raises(search.QueryTooShort):
        search.find(text)


@pytest.mark.parametrize("text", ["tr%", "%blay", "tr_mblay", "T_13", "' OR ''='", "tremblay' --", "%'; DROP TABLE repair_order; --",
                                  "tr\\emblay", "[a-z]*", "tremblay%%"])
def test_sql_and_like_wildcards_are_plain_text(shop, text):
    found = names(text)
    assert "Bélanger-Côté" not in found and "LEFEBVRE" not in found  # nothing behaves as "match anything"
    assert RepairOrder.select().count() == 4


def test_wildcards_never_widen_a_search(shop):
    assert names("tr%") == ["Tremblay"]  # the % is ignored like any punctuation, never "anything"
    assert names("%blay") == [] and names("tr_mblay") == []


def test_a_500_character_search_is_text_and_answers(shop):
    assert names("x" * 500) == []
    assert names("tremblay " + "y" * 491) == []
    assert names("b" * 500 + " tremblay") == []


def test_newest_activity_first_and_paging(db):
    now = utcnow()
    for n in range(5):
        ro(f"Gagnon{n}", ro_number=f"9000{n}", last_activity_at=now - timedelta(hours=n))
    first = search.find("gagnon", limit=2)
    assert [r.customer_last_name for r in first.items] == ["Gagnon0", "Gagnon1"] and first.has_more
    last = search.find("gagnon", limit=2, offset=4)
    assert [r.customer_last_name for r in last.items] == ["Gagnon4"] and not last.has_more


def test_status_and_member_filters(db):
    mine = ro("Roy", ro_number="1", status="completed", owner_user_id="UADVISOR")
    taking_part = ro("Roy", ro_number="2", status="in_progress")
    Participant.create(ro=taking_part, user_id="UADVISOR")
    left = ro("Roy", ro_number="3", status="in_progress")
    Participant.create(ro=left, user_id="UADVISOR", active=False)
    ro("Roy", ro_number="4", status="in_progress")
    numbers = lambda page: sorted(r.ro_number for r in page.items)  # noqa: E731
    assert numbers(search.find("roy", member="UADVISOR")) == ["1", "2"]
    assert numbers(search.find(None, member="UADVISOR")) == ["1", "2"]
    assert numbers(search.find("roy", status="in_progress")) == ["2", "3", "4"]
    assert numbers(search.find(None, status="completed", member="UADVISOR")) == ["1"]


def test_index_ro_follows_changes_and_reindex_all_rebuilds(db):
    row = ro("Gauthier", ro_number="700")
    row.customer_last_name = "Morin"
    row.save()
    search.index_ro(row)
    assert names("gauthier") == [] and names("morin") == ["Morin"]
    RoSearchTerm.delete().execute()
    assert names("morin") == []
    assert search.reindex_all(batch_size=1) == 1
    assert names("morin") == ["Morin"]
    assert RoSearchTerm.select().where(RoSearchTerm.ro == row.id).count() == len(search.terms_for("Jean", "Morin", "+15145550142", "700", row.tag_number))


def test_deleting_an_ro_deletes_its_keys(db):
    row = ro("Caron")
    row.delete_instance()
    assert RoSearchTerm.select().count() == 0


def _plan(query) -> str:
    sql, params = query.sql()
    if is_postgres():
        database.execute_sql("SET enable_seqscan = off")  # tiny tables: ask whether an index path exists
        try:
            return " ".join(row[0] for row in database.execute_sql("EXPLAIN " + sql, params).fetchall())
        finally:
            database.execute_sql("SET enable_seqscan = on")
    return " ".join(str(row[-1]) for row in database.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall())


def test_the_newest_matches_come_from_the_key_index_alone(shop):
    plan = _plan(search.newest_keys(search.parse_query("bel 0142"), 21))
    assert "ro_search_term_kind_term_activity_ro_id" in plan
    assert "repair_order" not in plan.replace("ro_search_term", "")
    assert "Seq Scan" not in plan and "SCAN t" not in plan, plan


def test_a_filtered_search_uses_the_key_index_too(shop):
    query = RepairOrder.select().where(RepairOrder.id.in_(search._matching(search.parse_query("jean trem"))))
    plan = _plan(query)
    assert "ro_search_term_kind_term_activity_ro_id" in plan
    assert "Seq Scan on ro_search_term" not in plan and "SCAN t2" not in plan, plan


def test_activity_moves_an_ro_up_its_search_results(db):
    now = utcnow()
    older = ro("Lavoie", ro_number="801", last_activity_at=now - timedelta(days=2))
    ro("Lavoie", ro_number="802", last_activity_at=now - timedelta(days=1))
    assert [r.ro_number for r in search.find("lavoie").items] == ["802", "801"]
    search.touch(older.id, now)
    assert [r.ro_number for r in search.find("lavoie").items] == ["801", "802"]
    assert [r.ro_number for r in search.find("lavoie", status="in_progress").items] == ["801", "802"]
    search.touch(older.id, now - timedelta(days=5))  # never moves back
    assert RepairOrder.get_by_id(older.id).last_activity_at == now
