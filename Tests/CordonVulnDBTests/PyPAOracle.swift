/// (package name as queried, version, expected advisory IDs sorted) computed by an independent
/// Python implementation (PyYAML + packaging) over ../shared/data/pypa-advisory-database.
let pypaOracle: [(name: String, version: String, ids: [String])] = [
    ("requests", "2.19.0", ["PYSEC-2018-28", "PYSEC-2023-74"]), // ordinary release inside two ranges (PYSEC-2018-28 <2.20.0, PYSEC-2023-74 [2.3.0,2.31.0))
    ("requests", "2.32.3", []), // modern safe requests: matches nothing
    ("requests", "2.31.0", []), // exact fixed boundary of PYSEC-2023-74: must NOT match
    ("requests", "2.3.0", ["PYSEC-2015-17", "PYSEC-2018-28", "PYSEC-2023-74"]), // introduced boundary of PYSEC-2023-74 and fixed boundary of PYSEC-2014-13/14
    ("requests", "2.2.1", ["PYSEC-2014-13", "PYSEC-2014-14", "PYSEC-2015-17", "PYSEC-2018-28"]), // last version before 2.3.0 fix; several advisories
    ("requests", "0!2.19.0", ["PYSEC-2018-28", "PYSEC-2023-74"]), // explicit 0! epoch must equal no epoch (no epochs exist in data)
    ("Requests", "2.20.0", ["PYSEC-2023-74"]), // capitalised name; fixed boundary of PYSEC-2018-28
    ("Django", "3.2", ["PYSEC-2021-109", "PYSEC-2021-439", "PYSEC-2021-7", "PYSEC-2021-8", "PYSEC-2021-98", "PYSEC-2021-99", "PYSEC-2022-1", "PYSEC-2022-19", "PYSEC-2022-190", "PYSEC-2022-191", "PYSEC-2022-2", "PYSEC-2022-20", "PYSEC-2022-213", "PYSEC-2022-245", "PYSEC-2022-3", "PYSEC-2022-304", "PYSEC-2023-100", "PYSEC-2023-12", "PYSEC-2023-13", "PYSEC-2023-222", "PYSEC-2023-225", "PYSEC-2023-226", "PYSEC-2023-61", "PYSEC-2024-28", "PYSEC-2024-47"]), // capitalised name; introduced boundary 3.2 of many multi-pair Django ranges
    ("django", "3.2.19", ["PYSEC-2023-100", "PYSEC-2023-222", "PYSEC-2023-225", "PYSEC-2023-226", "PYSEC-2024-28", "PYSEC-2024-47"]), // fixed boundary 3.2.19 of PYSEC-2023-61 (multi-pair range) must NOT match it
    ("django", "4.2.1", ["PYSEC-2023-100", "PYSEC-2023-222", "PYSEC-2023-225", "PYSEC-2023-226", "PYSEC-2024-102", "PYSEC-2024-28", "PYSEC-2024-47", "PYSEC-2024-56", "PYSEC-2024-57", "PYSEC-2024-58", "PYSEC-2024-59", "PYSEC-2024-67", "PYSEC-2024-68", "PYSEC-2024-69", "PYSEC-2024-70"]), // fixed 4.2.1 (third pair of PYSEC-2023-61) excluded; many later advisories
    ("DJANGO", "1.0", ["PYSEC-2007-1", "PYSEC-2008-1", "PYSEC-2008-2", "PYSEC-2009-3", "PYSEC-2009-4", "PYSEC-2011-1", "PYSEC-2011-2", "PYSEC-2011-3", "PYSEC-2011-4", "PYSEC-2011-5", "PYSEC-2011-8", "PYSEC-2011-9", "PYSEC-2012-2", "PYSEC-2012-3", "PYSEC-2012-4", "PYSEC-2014-1", "PYSEC-2014-2", "PYSEC-2014-3", "PYSEC-2014-4", "PYSEC-2014-5", "PYSEC-2014-6", "PYSEC-2014-7", "PYSEC-2015-10", "PYSEC-2015-11", "PYSEC-2015-20", "PYSEC-2015-4", "PYSEC-2015-5", "PYSEC-2015-6", "PYSEC-2015-7", "PYSEC-2015-8", "PYSEC-2015-9", "PYSEC-2016-15", "PYSEC-2016-16", "PYSEC-2016-18", "PYSEC-2016-2", "PYSEC-2016-3", "PYSEC-2019-16", "PYSEC-2021-98"]), // upper-case name; very old release hit by dozens of advisories
    ("django", "99.0", []), // far future version: nothing
    ("PyYAML", "5.1", ["PYSEC-2020-176", "PYSEC-2020-96", "PYSEC-2021-142"]), // mixed-case name; introduced boundary (PYSEC-2020-176/96) and fixed boundary (PYSEC-2018-49)
    ("pyyaml", "5.1b1", ["PYSEC-2018-49", "PYSEC-2021-142"]), // pre-release below introduced 5.1: only the from-0 ranges
    ("pyyaml", "5.2b1", ["PYSEC-2020-96", "PYSEC-2021-142"]), // pre-release that is exactly the fixed event of PYSEC-2020-176
    ("pyyaml", "5.4", []), // fixed boundary of last PyYAML advisory: nothing
    ("PyYaml", "5.3.1", ["PYSEC-2021-142"]), // fixed boundary of PYSEC-2020-96, still inside PYSEC-2021-142
    ("apache-airflow", "1.10.3a1", ["PYSEC-2019-214", "PYSEC-2019-215", "PYSEC-2019-216", "PYSEC-2020-14", "PYSEC-2020-15", "PYSEC-2020-16", "PYSEC-2020-162", "PYSEC-2020-17", "PYSEC-2020-18", "PYSEC-2020-19", "PYSEC-2020-20", "PYSEC-2020-21", "PYSEC-2020-22", "PYSEC-2020-23", "PYSEC-2020-262", "PYSEC-2021-122", "PYSEC-2021-2", "PYSEC-2021-3", "PYSEC-2021-4", "PYSEC-2022-11", "PYSEC-2022-261", "PYSEC-2022-29", "PYSEC-2022-30", "PYSEC-2022-42970", "PYSEC-2022-42971", "PYSEC-2022-42981", "PYSEC-2022-42982", "PYSEC-2022-42983", "PYSEC-2022-42984", "PYSEC-2023-103", "PYSEC-2023-104", "PYSEC-2023-105", "PYSEC-2023-106", "PYSEC-2023-119", "PYSEC-2023-134", "PYSEC-2023-136", "PYSEC-2023-152", "PYSEC-2023-158", "PYSEC-2023-170", "PYSEC-2023-171", "PYSEC-2023-197", "PYSEC-2023-2", "PYSEC-2023-202", "PYSEC-2023-203", "PYSEC-2023-231", "PYSEC-2023-232", "PYSEC-2023-3", "PYSEC-2023-59", "PYSEC-2023-60", "PYSEC-2024-13", "PYSEC-2024-14", "PYSEC-2024-42"]), // alpha below a b1 fixed event (PYSEC-2019-214/215 fixed 1.10.3b1): matches
    ("Apache_Airflow", "1.10.3b1", ["PYSEC-2019-216", "PYSEC-2020-14", "PYSEC-2020-15", "PYSEC-2020-16", "PYSEC-2020-162", "PYSEC-2020-17", "PYSEC-2020-18", "PYSEC-2020-19", "PYSEC-2020-20", "PYSEC-2020-21", "PYSEC-2020-22", "PYSEC-2020-23", "PYSEC-2020-262", "PYSEC-2021-122", "PYSEC-2021-2", "PYSEC-2021-3", "PYSEC-2021-4", "PYSEC-2022-11", "PYSEC-2022-261", "PYSEC-2022-29", "PYSEC-2022-30", "PYSEC-2022-42970", "PYSEC-2022-42971", "PYSEC-2022-42981", "PYSEC-2022-42982", "PYSEC-2022-42983", "PYSEC-2022-42984", "PYSEC-2023-103", "PYSEC-2023-104", "PYSEC-2023-105", "PYSEC-2023-106", "PYSEC-2023-119", "PYSEC-2023-134", "PYSEC-2023-136", "PYSEC-2023-152", "PYSEC-2023-158", "PYSEC-2023-170", "PYSEC-2023-171", "PYSEC-2023-197", "PYSEC-2023-2", "PYSEC-2023-202", "PYSEC-2023-203", "PYSEC-2023-231", "PYSEC-2023-232", "PYSEC-2023-3", "PYSEC-2023-59", "PYSEC-2023-60", "PYSEC-2024-13", "PYSEC-2024-14", "PYSEC-2024-42"]), // underscore/case name; pre-release equal to fixed 1.10.3b1: PYSEC-2019-214/215 drop out
    ("ansible", "2.8.16rc1", ["PYSEC-2020-220", "PYSEC-2020-3", "PYSEC-2021-1", "PYSEC-2021-105", "PYSEC-2021-106", "PYSEC-2021-124", "PYSEC-2021-126", "PYSEC-2021-358", "PYSEC-2022-164"]), // rc equal to fixed event 2.8.16rc1 of PYSEC-2020-209: must NOT match it
    ("ansible", "2.8.16a1", ["PYSEC-2020-209", "PYSEC-2020-220", "PYSEC-2020-3", "PYSEC-2021-1", "PYSEC-2021-105", "PYSEC-2021-106", "PYSEC-2021-124", "PYSEC-2021-126", "PYSEC-2021-358", "PYSEC-2022-164"]), // alpha below rc1 fixed event: PYSEC-2020-209 matches
    ("urllib3", "2.0.0a1", []), // pre-release below introduced 2.0.0 and above fixed 1.26.x: nothing
    ("urllib3", "1.26.5", ["PYSEC-2023-192", "PYSEC-2023-212"]), // fixed boundary of PYSEC-2021-108, inside reversed-order multi-pair ranges
    ("urllib3", "1.26.18", []), // fixed boundary of the second pair of PYSEC-2023-212: nothing
    ("beaker", "1.6.5", ["PYSEC-2012-1", "PYSEC-2020-216"]), // below post-release fixed event 1.6.5.post1 (PYSEC-2012-1) + open-ended PYSEC-2020-216
    ("Beaker", "1.6.5.post1", ["PYSEC-2020-216"]), // post-release equal to fixed event: only open-ended PYSEC-2020-216
    ("beaker", "1.7.0.dev0", ["PYSEC-2020-216"]), // dev release; versions list spells it '1.7.0dev' (PEP 440 equality); open-ended range
    ("label-studio", "1.5.0", ["PYSEC-2022-300"]), // release below fixed 1.5.0.post0
    ("Label_Studio", "1.5.0.post0", []), // post0 equal to fixed event: must NOT match PYSEC-2022-300
    ("ctx", "0.1.2", []), // below introduced 0.1.2-1 (== 0.1.2.post1): must NOT match
    ("ctx", "0.1.2.post1", ["PYSEC-2022-199"]), // introduced boundary spelled '0.1.2-1' in data: must match
    ("ctx", "0.2.0", ["PYSEC-2022-199"]), // versions list has '0.2' (padding equality); open-ended range
    ("duckdb", "0.9.3.dev5", ["PYSEC-2024-25"]), // dev release below dev fixed event 0.9.3.dev6
    ("duckdb", "0.9.3.dev6", []), // dev release equal to fixed event: nothing
    ("scikit-learn", "0.23.2", ["PYSEC-2020-108"]), // below fixed 0.24.dev0 (PYSEC-2020-108)
    ("Scikit_Learn", "0.24.0rc1", []), // rc above fixed 0.24.dev0: nothing
    ("invenio-app-rdm", "7.0.0.dev0", ["PYSEC-2021-837"]), // dev release equal to introduced event of second pair: must match
    ("invenio-app-rdm", "7.0.0.dev5", []), // dev release equal to fixed event of second pair: nothing
    ("Invenio.App.RDM", "6.0.5", []), // dotted/caps name; fixed boundary of first pair: nothing
    ("invenio-app-rdm", "6.0.4", ["PYSEC-2021-837"]), // inside first pair
    ("py", "1.11.0", ["PYSEC-2022-42969"]), // last_affected boundary (inclusive) of PYSEC-2022-42969
    ("py", "1.11.0.post1", []), // post-release just above last_affected: nothing
    ("py", "1.10.0", ["PYSEC-2022-42969"]), // fixed boundary of PYSEC-2020-92; still <= last_affected of PYSEC-2022-42969
    ("py", "1.9.0", ["PYSEC-2020-92", "PYSEC-2022-42969"]), // inside both py advisories
    ("JW_Util", "2.2", ["PYSEC-2020-341"]), // data name 'jw.util' (only non-canonical name in data) queried as JW_Util
    ("jw-util", "2.3", []), // canonical spelling; fixed boundary: nothing
    ("gratient", "0.5.0", ["PYSEC-2024-1"]), // no ECOSYSTEM range, versions ['0.5'] only: PEP 440 padding equality
    ("gratient", "0.5.1", []), // versions-only advisory, not listed: nothing
    ("gevent", "23.9.0", ["PYSEC-2023-177"]), // in versions list although ECOSYSTEM fixed is 23.9.0: versions list wins
    ("gevent", "23.9.1", []), // above fixed and not in versions: nothing
    ("pyspark", "3.1.2", ["PYSEC-2022-186", "PYSEC-2022-236", "PYSEC-2022-42976", "PYSEC-2023-44", "PYSEC-2023-72"]), // overlapping/unsorted pairs (fixed 3.1.1 then introduced 3.1.1); also in versions lists
    ("wagtail", "2.11.6", ["PYSEC-2021-103", "PYSEC-2021-114", "PYSEC-2023-219", "PYSEC-2023-55", "PYSEC-2023-56", "PYSEC-2024-86"]), // overlapping pairs [2.11,2.11.7) and [0,2.11.6); in versions list
    ("Zope", "4.6.1", ["PYSEC-2021-368", "PYSEC-2023-193"]), // reversed-order multi-pair ranges; fixed boundary of PYSEC-2021-104
    ("zope", "5.8.6", []), // fixed boundary of last Zope advisory: nothing
    ("redis", "5.0.0", []), // only withdrawn PYSEC-2023-73 (open-ended) covers it: nothing
    ("redis", "4.5.2", ["PYSEC-2023-45", "PYSEC-2023-46"]), // live advisories match, withdrawn PYSEC-2023-73 excluded
    ("loguru", "0.5.0", ["PYSEC-2022-14"]), // package with a withdrawn record (PYSEC-2022-15) plus a live one
    ("beaker", "1!0.1", ["PYSEC-2020-216"]), // epoch 1 sorts above all epoch-0 versions: only open-ended PYSEC-2020-216
    ("requests", "1!2.19.0", []), // epoch 1 is above every fixed event: nothing
    ("Pillow", "10.0.0", ["PYSEC-2023-175"]), // capitalised name; fixed boundary of PYSEC-2023-227, inside PYSEC-2023-175
    ("pillow", "9.2.0", ["PYSEC-2022-42980", "PYSEC-2023-175", "PYSEC-2023-227"]), // introduced boundary of PYSEC-2022-42980 and fixed boundary of PYSEC-2022-42979
    ("Tensorflow_CPU", "2.11.1", []), // underscore/case name; heavily-advised package, safe version: nothing
    ("flask", "3.0.0", []), // package present in data, safe version: nothing
    ("nonexistent-package-cordon", "1.0.0", []), // unknown package: nothing
]
