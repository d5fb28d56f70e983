"""Writes tests/data/country-test.mmdb, the small GeoIP2-Country-style database the tests use.

Run: pip install mmdb-writer && python3 tests/data/make-country-mmdb.py
127.0.0.0/8 is FR, 10.0.0.0/8 is DE, ::1 is JP (so loopback viewers have a country).
"""
from netaddr import IPSet
from mmdb_writer import MMDBWriter

writer = MMDBWriter(ip_version=6, database_type="GeoIP2-Country", ipv4_compatible=True)
writer.insert_network(IPSet(["127.0.0.0/8"]), {"country": {"iso_code": "FR"}})
writer.insert_network(IPSet(["10.0.0.0/8"]), {"country": {"iso_code": "DE"}})
writer.insert_network(IPSet(["::1/128"]), {"country": {"iso_code": "JP"}})
writer.to_db_file("tests/data/country-test.mmdb")
