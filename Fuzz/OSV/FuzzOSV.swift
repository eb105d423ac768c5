@testable import CordonVulnDB
import CordonScan
import FuzzSupport

/// One OSV record's bytes (YAML or JSON, through libyaml) → `OSVDecoder.decode`, the step of
/// `VulnDatabase.importRecords` that reads untrusted files (the SQLite rows are written from its
/// result). Internal, hence `@testable` (fuzz.sh builds with `-enable-testing`). A decoded
/// record then goes through the database's text form of ranges and versions and must match the
/// same versions afterwards as before: what `cordon scan` reports is what the record says.
@main enum FuzzOSV {
    static func main() {
        Fuzzer.run { input in
            guard let advisory = try? OSVDecoder.decode(Array(input)) else { return }
            let record = advisory.record
            for entry in record.affected {
                // Each `affects` walks every listed version: long lists would cost more than they find.
                guard let ecosystem = Ecosystem(osv: entry.package.ecosystem), entry.versions.count <= 16 else { continue }
                let stored = OSVRecord.Affected(package: entry.package,
                                                ranges: RangeCoding.decode(RangeCoding.encode(entry.ranges)),
                                                versions: entry.versions.joined(separator: "\n").split(separator: "\n").map(String.init))
                let before = OSVRecord(id: record.id, withdrawn: record.withdrawn, affected: [entry])
                let after = OSVRecord(id: record.id, withdrawn: record.withdrawn, affected: [stored])
                let candidates = Set(["0"] + entry.versions.prefix(2) + entry.ranges.prefix(2).flatMap { $0.events.prefix(3).map(\.version) })
                for version in candidates {
                    let a = affects(before, ecosystem: ecosystem, name: entry.package.name, version: version)
                    let b = affects(after, ecosystem: ecosystem, name: entry.package.name, version: version)
                    require(a == b, "\(record.id) \(entry.package.name) \(version): affected \(a) as read, \(b) as stored")
                }
            }
        }
    }
}
