import CordonArchive
import CordonScan
import CordonSQLite
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// The offline vulnerability database: OSV records in SQLite (WAL), kept in its own file in the
/// state directory, matched with `CordonScan.affects`.
/// Safe to share between threads: the connection is opened serialized and every call prepares
/// its own statements.
public final class VulnDatabase: @unchecked Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public struct ImportSummary: Codable, Equatable, Sendable {
        public var files: Int
        public var records: Int
        public var withdrawn: Int
        public var skipped: Int
        public var seconds: Double
    }

    public struct Status: Codable, Equatable, Sendable {
        public struct Source: Codable, Equatable, Sendable {
            public var path: String
            public var importedAt: String
            public var records: Int
        }
        public var records: Int
        public var withdrawn: Int
        public var byEcosystem: [String: Int]
        public var newestModified: String?
        /// Days since the newest record was modified: how stale the database is.
        public var newestAgeDays: Int?
        public var sources: [Source]
    }

    static let schemaVersion = "1"
    let db: SQLiteDatabase

    /// Opens (creating if needed) the database at `path`.
    public init(path: String) throws(Failure) {
        do {
            db = try SQLiteDatabase(path: path)
            try db.execute("""
                PRAGMA journal_mode = WAL;
                PRAGMA synchronous = NORMAL;
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS sources (path TEXT PRIMARY KEY, imported_at TEXT NOT NULL, records INTEGER NOT NULL);
                CREATE TABLE IF NOT EXISTS records (id TEXT PRIMARY KEY, modified TEXT, published TEXT, withdrawn TEXT,
                    summary TEXT, aliases TEXT NOT NULL, source TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS affected (record_id TEXT NOT NULL, ecosystem TEXT NOT NULL, ecosystem_full TEXT NOT NULL,
                    name TEXT NOT NULL, ranges TEXT NOT NULL, versions TEXT NOT NULL);
                CREATE INDEX IF NOT EXISTS affected_package ON affected (ecosystem, name);
                CREATE INDEX IF NOT EXISTS affected_record ON affected (record_id);
                INSERT OR IGNORE INTO meta VALUES ('schema', '\(VulnDatabase.schemaVersion)');
                """)
        } catch { throw Failure(description: "vulnerability database \(path): \(error)") }
    }

    /// Imports OSV records from files and directories (recursively: .yaml, .yml, .json). All or
    /// nothing: a file that is not a valid record aborts the import, naming the file and field,
    /// and leaves the database as it was. `progress` is called with (done, total).
    public func importRecords(from paths: [String], progress: (Int, Int) -> Void = { _, _ in }) throws(Failure) -> ImportSummary {
        let start = MonotonicClock.now
        // (source, display name, bytes loader): plain files are read when their turn comes;
        // members of a .zip dump (OSV publishes them so) are read through the archive limits.
        var files: [(source: String, file: String, load: () throws -> [UInt8])] = []
        let isRecord = { (name: String) in [".yaml", ".yml", ".json"].contains(where: name.hasSuffix) }
        for path in paths {
            switch FileSystem.kind(path) {
            case .directory:
                do {
                    for file in try FileSystem.regularFiles(under: path) where isRecord(file) {
                        files.append((path, file, { try FileSystem.read(file, limit: 8 << 20) }))
                    }
                } catch { throw Failure(description: "\(error)") }
            case .file where path.hasSuffix(".zip"):
                do {
                    try ArchiveReader(path: path).forEach { entry, read in
                        guard entry.kind == .file, isRecord(entry.path) else { return }
                        let bytes = try read()
                        files.append((path, "\(path)!\(entry.path)", { bytes }))
                    }
                } catch { throw Failure(description: "\(error)") }
            case .file: files.append((path, path, { try FileSystem.read(path, limit: 8 << 20) }))
            case .missing: throw Failure(description: "\(path): no such file or directory")
            default: throw Failure(description: "\(path): not a file or directory")
            }
        }
        var summary = ImportSummary(files: files.count, records: 0, withdrawn: 0, skipped: 0, seconds: 0)
        var perSource: [String: Int] = [:]
        do {
            try db.transaction {
                let deleteAffected = try db.prepare("DELETE FROM affected WHERE record_id = ?1")
                let insertRecord = try db.prepare("INSERT OR REPLACE INTO records VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
                let insertAffected = try db.prepare("INSERT INTO affected VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                for (i, entry) in files.enumerated() {
                    let bytes: [UInt8]
                    do { bytes = try entry.load() } catch { throw Failure(description: "\(entry.file): \(error)") }
                    let advisory: StoredAdvisory
                    do { advisory = try OSVDecoder.decode(bytes) } catch {
                        throw Failure(description: "\(entry.file): \(error)")
                    }
                    let record = advisory.record
                    try deleteAffected.run([record.id])
                    try insertRecord.run([record.id, advisory.modified, advisory.published, record.withdrawn, record.summary,
                                          record.aliases.joined(separator: "\n"), entry.file])
                    for affected in record.affected {
                        let full = affected.package.ecosystem
                        let base = String(full.split(separator: ":", maxSplits: 1).first ?? "")
                        let name = Ecosystem(osv: full)?.normalizedName(affected.package.name) ?? affected.package.name
                        try insertAffected.run([record.id, base, full, name, RangeCoding.encode(affected.ranges),
                                                affected.versions.joined(separator: "\n")])
                    }
                    summary.records += 1
                    if record.withdrawn != nil { summary.withdrawn += 1 }
                    perSource[entry.source, default: 0] += 1
                    if i % 200 == 0 || i == files.count - 1 { progress(i + 1, files.count) }
                }
                let now = UTCTime.now()
                let upsertSource = try db.prepare("INSERT OR REPLACE INTO sources VALUES (?1, ?2, ?3)")
                for (source, count) in perSource { try upsertSource.run([source, now, String(count)]) }
            }
        } catch let error as Failure {
            throw error
        } catch {
            throw Failure(description: "import: \(error)")
        }
        summary.seconds = MonotonicClock.now - start
        return summary
    }

    /// IDs of the advisories (not withdrawn) that affect `name` at `version`, sorted.
    public func advisories(ecosystem: Ecosystem, name: String, version: String) throws(Failure) -> [String] {
        do {
            let query = try db.prepare("""
                SELECT a.record_id, a.ecosystem_full, a.ranges, a.versions, r.withdrawn FROM affected a
                JOIN records r ON r.id = a.record_id WHERE a.ecosystem = ?1 AND a.name = ?2
                """)
            var ids = Set<String>()
            for row in try query.rows([ecosystem.rawValue, ecosystem.normalizedName(name)]) {
                guard let id = row[0], let full = row[1] else { continue }
                let affected = OSVRecord.Affected(package: .init(ecosystem: full, name: name),
                                                  ranges: RangeCoding.decode(row[2] ?? ""),
                                                  versions: (row[3] ?? "").split(separator: "\n").map(String.init))
                let record = OSVRecord(id: id, withdrawn: row[4], affected: [affected])
                if affects(record, ecosystem: ecosystem, name: name, version: version) { ids.insert(id) }
            }
            return ids.sorted()
        } catch { throw Failure(description: "query: \(error)") }
    }

    public func status() throws(Failure) -> Status {
        do {
            let count = { (sql: String) throws -> Int in Int(try self.db.prepare(sql).rows([]).first?.first??.description ?? "0") ?? 0 }
            var byEcosystem: [String: Int] = [:]
            for row in try db.prepare("SELECT ecosystem, COUNT(DISTINCT record_id) FROM affected GROUP BY ecosystem").rows([]) {
                if let e = row[0], let n = row[1].flatMap({ Int($0) }) { byEcosystem[e] = n }
            }
            let sources = try db.prepare("SELECT path, imported_at, records FROM sources ORDER BY path").rows([]).map {
                Status.Source(path: $0[0] ?? "", importedAt: $0[1] ?? "", records: Int($0[2] ?? "0") ?? 0)
            }
            let newest = try db.prepare("SELECT MAX(modified) FROM records").rows([]).first?.first ?? nil
            let age = try db.prepare("SELECT CAST(julianday('now') - julianday(MAX(modified)) AS INTEGER) FROM records").rows([]).first?.first ?? nil
            return Status(records: try count("SELECT COUNT(*) FROM records"),
                          withdrawn: try count("SELECT COUNT(*) FROM records WHERE withdrawn IS NOT NULL"),
                          byEcosystem: byEcosystem,
                          newestModified: newest, newestAgeDays: age.flatMap { Int($0) },
                          sources: sources)
        } catch { throw Failure(description: "status: \(error)") }
    }
}

