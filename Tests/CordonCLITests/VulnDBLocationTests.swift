import CordonConfig
import Testing

/// The vulnerability database's location: public data, so by default not in the state dir that
/// cordond keeps private (a non-root user could not scan with it).
struct VulnDBLocationTests {
    @Test func theDefaultIsSharedAndOutsideThePrivateStateDir() {
        let db = Locations().vulnDB()
        // (The test runs without $CORDON_STATE_DIR: `make test` does not set it.)
        #expect(db.path == "/var/lib/cordon-scan/vulndb.sqlite" && db.shared)
        #expect(!db.path.hasPrefix(Locations.systemStateDir + "/"))
    }

    @Test func aStateDirSomeoneNamesHoldsItPrivately() {
        let db = Locations(stateDir: "/srv/scan-state").vulnDB()
        #expect(db.path == "/srv/scan-state/vulndb.sqlite" && db.dir == "/srv/scan-state" && !db.shared)
    }
}
