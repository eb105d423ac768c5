import Testing
@testable import CordonScan

/// Asserts every pair in `chain` is strictly increasing (both directions, via `compareVersions`),
/// and that each element compares equal to itself.
func expectStrictlyIncreasing(_ chain: [String], _ ecosystem: Ecosystem,
                              sourceLocation: SourceLocation = #_sourceLocation) {
    for (i, a) in chain.enumerated() {
        #expect(compareVersions(a, a, ecosystem: ecosystem) == .orderedSame,
                "\(a) == \(a)", sourceLocation: sourceLocation)
        for b in chain[(i + 1)...] {
            #expect(compareVersions(a, b, ecosystem: ecosystem) == .orderedAscending,
                    "\(a) < \(b)", sourceLocation: sourceLocation)
            #expect(compareVersions(b, a, ecosystem: ecosystem) == .orderedDescending,
                    "\(b) > \(a)", sourceLocation: sourceLocation)
        }
    }
}

/// Asserts all spellings compare equal to each other.
func expectAllEqual(_ spellings: [String], _ ecosystem: Ecosystem,
                    sourceLocation: SourceLocation = #_sourceLocation) {
    for a in spellings {
        for b in spellings {
            #expect(compareVersions(a, b, ecosystem: ecosystem) == .orderedSame,
                    "\(a) == \(b)", sourceLocation: sourceLocation)
        }
    }
}
