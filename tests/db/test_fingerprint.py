"""Statement normalization: values out, shape kept, lists collapsed."""

from __future__ import annotations

import pytest

from overdrive.db import Fingerprint, Fingerprinter, normalize


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("SELECT * FROM t WHERE id = 42", "SELECT * FROM t WHERE id = ?"),
        ("select a from t where name = 'O''Brien' and x = -1.5e3", "select a from t where name = ? and x = ?"),
        ("SELECT a FROM t WHERE id IN (1, 2, 3)", "SELECT a FROM t WHERE id IN (...)"),
        ("SELECT a FROM t WHERE id IN (?, ?, ?, ?, ?)", "SELECT a FROM t WHERE id IN (...)"),
        ("SELECT a FROM t WHERE id IN ($1, $2)", "SELECT a FROM t WHERE id IN (...)"),
        ("SELECT a FROM t WHERE id IN (%s)", "SELECT a FROM t WHERE id IN (...)"),
        ("SELECT a FROM t WHERE id = %(id_1)s", "SELECT a FROM t WHERE id = ?"),
        ("SELECT a FROM t WHERE id = :ident", "SELECT a FROM t WHERE id = ?"),
        ("SELECT a::int FROM t", "SELECT a::int FROM t"),
        ("INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?)", "INSERT INTO t (a, b) VALUES (...)"),
        ("SELECT 1 -- trailing\n/* block\n comment */ FROM t1", "SELECT ? FROM t1"),
        ("SELECT '-- not a comment' AS \"we'ird\" FROM t", 'SELECT ? AS "we\'ird" FROM t'),
        ("SELECT $tag$ a 'b' $tag$, $$x$$ FROM t", "SELECT ?, ? FROM t"),
        ("SELECT a\n\t  FROM   t   LIMIT 10 OFFSET 20", "SELECT a FROM t LIMIT ? OFFSET ?"),
        ("SELECT col2, t3.x FROM t3 WHERE a-1 > b", "SELECT col2, t3.x FROM t3 WHERE a-? > b"),
        ("SELECT E'\\n', X'00ff' FROM t", "SELECT ?, ? FROM t"),
        ("SELECT pg_sleep(0.5), coalesce(a, 1) FROM t", "SELECT pg_sleep(?), coalesce(a, ?) FROM t"),
        ("insert into t values (1, 'a'),(2, 'b')", "insert into t values (...)"),
        ("SELECT a FROM t WHERE (a, b) in ((1, 2))", "SELECT a FROM t WHERE (a, b) in ((?, ?))"),
    ],
)
def test_normalize(statement: str, expected: str) -> None:
    assert normalize(statement) == expected


def test_in_lists_of_any_length_share_a_fingerprint() -> None:
    shapes = {Fingerprint.of(f"SELECT a FROM t WHERE id IN ({', '.join(['?'] * n)})").id for n in (1, 2, 50, 999)}
    assert len(shapes) == 1
    assert Fingerprint.of("SELECT a FROM t WHERE id = 1").id != Fingerprint.of("SELECT b FROM t WHERE id = 1").id


def test_fingerprint_fields_and_stability() -> None:
    fingerprint = Fingerprint.of("  update t set a = 1 where id = 2")
    assert fingerprint.operation == "UPDATE"
    assert fingerprint.normalized == "update t set a = ? where id = ?"
    assert fingerprint.id == Fingerprint.of("UPDATE_NOT".lower()[:0] + "update t set a = 5 where id = 9").id
    assert len(fingerprint.id) == 16
    assert Fingerprint.of("").operation == ""


def test_fingerprinter_caches_and_stays_bounded() -> None:
    fingerprinter = Fingerprinter(cache_size=3)
    first = fingerprinter("SELECT 1")
    assert fingerprinter("SELECT 1") is first
    for n in range(10):
        fingerprinter(f"SELECT {n} FROM t")
    assert len(fingerprinter._cache) <= 3
    with pytest.raises(ValueError, match="at least 1"):
        Fingerprinter(cache_size=0)
