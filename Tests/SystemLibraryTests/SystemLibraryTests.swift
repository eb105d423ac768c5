import CArchive
import CCap
import CCurl
import CSeccomp
import CSQLite
import Testing

/// Each C library Cordon builds on links and reports a version new enough for what Cordon uses.
struct SystemLibraryTests {
    @Test func libseccompSupportsUserNotification() throws {
        let v = try #require(seccomp_version())
        // SCMP_ACT_NOTIFY needs libseccomp 2.5.
        #expect(v.pointee.major > 2 || (v.pointee.major == 2 && v.pointee.minor >= 5))
    }

    @Test func sqliteHasWAL() {
        #expect(sqlite3_libversion_number() >= 3_022_000)
    }

    @Test func libcurlAndLibarchiveLink() {
        #expect(String(cString: curl_version()).hasPrefix("libcurl/"))
        #expect(archive_version_number() >= 3_006_000)
    }

    @Test func libcapKnowsCapabilityNames() throws {
        let name = try #require(cap_to_name(cap_value_t(CAP_SYS_ADMIN)))
        defer { cap_free(name) }
        #expect(String(cString: name) == "cap_sys_admin")
    }
}
