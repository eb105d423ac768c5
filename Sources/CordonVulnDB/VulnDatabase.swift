import CordonArchive
import CordonScan
import CordonSQLite
import CordonSystem
#if canImport(Glibc)
import Glibc
#endif

/// The offline vulnerability database: OSV records in SQLite, kept in its own file in the state
/// directory, matched with `CordonScan.affects`. Written by `cordon db import` (rollback journal,
/// so that readers need no write access anywhere: no -wal or -shm files); read by scans through
/// a read-only connection, as any user who can read the file.
/// Safe to share between threads: the connection is opened serialized and every call prepares
/// its own statements.
public final class VulnDatabase: @unchecked Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// What an import did: records added, changed (content differs from the stored copy),
    /// unchanged (left as they were), removed (no longer in a source imported again).
    public struct ImportSummary: Codable, Equatable, Sendable {
        public var files: Int
        public var records: Int
        public var added: Int
        public var changed: Int
        public var unchanged: Int
        public var removed: Int
        public var withdrawn: Int
        public var skipped: Int
        public var seconds: Double
    }

    public struct Status: Codable, Equatable, Sendable {
        public struct Source: Codable, Equatable, Sendable {
            public var path: String
            public var importedAt: String
            /// Days since the last import of this source.
            public var importedAgeDays: Int?
            public var records: Int
            public var byEcosystem: [String: Int]
            /// The newest `modified` time among its records: how current the source itself was.
            public var newestModified: String?
            public var newestAgeDays: Int?
            public var lastImport: Counts
        }
        public struct Counts: Codable, Equatable, Sendable {
            public var added: Int
            public var changed: Int
            public var unchanged: Int
            public var removed: Int
        }
        public var path: String
        public var records: Int
        public var withdrawn: Int
        public var byEcosystem: [String: Int]
        public var newestModified: String?
        /// Days since the newest record was modified: how stale the database is.
        public var newestAgeDays: Int?
        public var sources: [Source]
    }

    /// One advisory that affects a package version, with what a user needs to act on it.
    public struct Advisory: Codable, Sendable, Equatable {
        public var id: String
        public var aliases: [String]
        public var summary: String?
        public var details: String?
        /// critical, high, medium or low; nil when the record grades it nowhere.
        public var severity: String?
        /// The CVSS v3 base score, when the record has a v3 vector.
        public var score: Double?
        /// The record's severity entries, "TYPE score" (e.g. "CVSS_V3 CVSS:3.1/AV:N/...").
        public var cvss: [String]
        /// The affected ranges, as people read them ("< 2.15.1", ">= 2.0, < 2.3.4").
        public var affected: [String]
        /// Every version the record names as a fix.
        public var fixed: [String]
        /// The lowest fixed version above the installed one in the range that contains it:
        /// what to upgrade to. Nil when that range has no fix.
        public var fixedIn: String?
        public var published: String?
        public var modified: String?
        public var url: String?

        public init(id: String, aliases: [String] = [], summary: String? = nil, details: String? = nil, severity: String? = nil,
                    score: Double? = nil, cvss: [String] = [], affected: [String] = [], fixed: [String] = [], fixedIn: String? = nil,
                    published: String? = nil, modified: String? = nil, url: String? = nil) {
            self.id = id; self.aliases = aliases; self.summary = summary; self.details = details; self.severity = severity
            self.score = score; self.cvss = cvss; self.affected = affected; self.fixed = fixed; self.fixedIn = fixedIn
            self.published = published; self.modified = modified; self.url = url
        }
    }

    static let schemaVersion = "2"
    /// Part of each record's content hash: a new decoder (new stored fields) makes every record
    /// "changed" once, so that an import fills the new fields.
    static let decoderVersion = "osv-2"
    let db: SQLiteDatabase
    public let path: String
    /// Records (not withdrawn) per base ecosystem, read when the database is opened: a package of
    /// an ecosystem with none is "not checked", never clean.
    public private(set) var recordsByEcosystem: [String: Int] = [:]

    static let tables = """
        CREATE TABLE IF NOT EXISTS sources (path TEXT PRIMARY KEY, imported_at TEXT NOT NULL, records INTEGER NOT NULL,
            added INTEGER NOT NULL DEFAULT 0, changed INTEGER NOT NULL DEFAULT 0, unchanged INTEGER NOT NULL DEFAULT 0,
            removed INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE IF NOT EXISTS records (id TEXT PRIMARY KEY, modified TEXT, published TEXT, withdrawn TEXT,
            summary TEXT, aliases TEXT NOT NULL, source TEXT NOT NULL, details TEXT, severity TEXT, score REAL,
            cvss TEXT, url TEXT, hash TEXT, origin TEXT);
        CREATE TABLE IF NOT EXISTS affected (record_id TEXT NOT NULL, ecosystem TEXT NOT NULL, ecosystem_full TEXT NOT NULL,
            name TEXT NOT NULL, ranges TEXT NOT NULL, versions TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS affected_package ON affected (ecosystem, name);
        CREATE INDEX IF NOT EXISTS affected_record ON affected (record_id);
        CREATE INDEX IF NOT EXISTS records_origin ON records (origin);
        """

    /// Schema 1 (before advisory details and incremental imports) → 2: new columns; each record's
    /// origin (the source it was imported from) recovered from its file name.
    static let migrateFrom1 = """
        ALTER TABLE sources ADD COLUMN added INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE sources ADD COLUMN changed INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE sources ADD COLUMN unchanged INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE sources ADD COLUMN removed INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE records ADD COLUMN details TEXT;
        ALTER TABLE records ADD COLUMN severity TEXT;
        ALTER TABLE records ADD COLUMN score REAL;
        ALTER TABLE records ADD COLUMN cvss TEXT;
        ALTER TABLE records ADD COLUMN url TEXT;
        ALTER TABLE records ADD COLUMN hash TEXT;
        ALTER TABLE records ADD COLUMN origin TEXT;
        UPDATE records SET origin = (SELECT s.path FROM sources s WHERE records.source = s.path
            OR substr(records.source, 1, length(s.path) + 1) IN (s.path || '/', s.path || '!') ORDER BY length(s.path) DESC LIMIT 1);
        """

    /// Opens (creating if needed) the database at `path` for writing: `cordon db import`.
    public init(path: String) throws(Failure) {
        self.path = path
        do {
            db = try SQLiteDatabase(path: path)
            // A rollback journal, not WAL: a reader without write access to the directory cannot
            // create the -shm file WAL needs (switching also folds an older WAL database back).
            try db.execute("""
                PRAGMA journal_mode = DELETE;
                PRAGMA synchronous = FULL;
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                """)
            try db.transaction {
                let schema = try db.prepare("SELECT value FROM meta WHERE key = 'schema'").rows([]).first?.first ?? nil
                switch schema {
                case nil:
                    try db.execute(Self.tables)
                    try db.execute("INSERT INTO meta VALUES ('schema', '\(Self.schemaVersion)')")
                case "1"?:
                    try db.execute(Self.migrateFrom1)
                    try db.execute(Self.tables)
                    try db.execute("UPDATE meta SET value = '\(Self.schemaVersion)' WHERE key = 'schema'")
                case Self.schemaVersion?: break
                case let other?: throw Failure(description: "schema \(other) is newer than this cordon's (\(Self.schemaVersion))")
                }
            }
            try loadCounts()
        } catch let error as Failure {
            throw Failure(description: "vulnerability database \(path): \(error)")
        } catch { throw Failure(description: "vulnerability database \(path): \(error)") }
    }

    /// Opens the database at `path` read-only, for queries (`cordon scan`, `db status`, `db
    /// match`): as any user who can read the file, in a directory they cannot write. Never
    /// creates or changes anything.
    public init(readingAt path: String) throws(Failure) {
        self.path = path
        func open(immutable: Bool) throws -> SQLiteDatabase {
            let db = try SQLiteDatabase(readingAt: path, immutable: immutable)
            _ = try db.prepare("SELECT value FROM meta WHERE key = 'schema'").rows([])
            return db
        }
        do {
            var opened: SQLiteDatabase
            do { opened = try open(immutable: false) } catch {
                // A database still in WAL mode (written by an older cordon) needs a -shm file its
                // reader can create; read it as an immutable file instead.
                guard let db = try? open(immutable: true) else { throw error }
                opened = db
            }
            db = opened
            let schema = try db.prepare("SELECT value FROM meta WHERE key = 'schema'").rows([]).first?.first ?? nil
            guard schema == Self.schemaVersion else {
                throw Failure(description: "written by \(schema.map { "an older cordon (schema \($0))" } ?? "something else"); "
                    + "run `cordon db import` again as its owner to upgrade it")
            }
            try loadCounts()
        } catch let error as Failure {
            throw Failure(description: "vulnerability database \(path): \(error.description)")
        } catch let error as SQLiteDatabase.Failure {
            var message = "vulnerability database \(path): \(error.message)"
            if access(path, R_OK) != 0 {
                message += " (\(String(cString: strerror(errno))) for uid \(getuid()): the file and every directory above it must be readable"
                    + " by this user; a state directory that cordond made private (0700) is not — import into the default"
                    + " location, /var/lib/cordon-scan, or a --state-dir that user can read)"
            }
            throw Failure(description: message)
        } catch { throw Failure(description: "vulnerability database \(path): \(error)") }
    }

    private func loadCounts() throws {
        var counts: [String: Int] = [:]
        for row in try db.prepare("""
            SELECT a.ecosystem, COUNT(DISTINCT a.record_id) FROM affected a JOIN records r ON r.id = a.record_id
            WHERE r.withdrawn IS NULL GROUP BY a.ecosystem
            """).rows([]) {
            if let e = row[0], let n = row[1].flatMap({ Int($0) }) { counts[e] = n }
        }
        recordsByEcosystem = counts
    }

    /// Why a package of `ecosystem` at `version` cannot be checked against this database, or nil
    /// when it can.
    public func notCheckedReason(ecosystem: Ecosystem, version: String) -> String? {
        if (recordsByEcosystem[ecosystem.rawValue] ?? 0) == 0 { return "no advisories for \(ecosystem.rawValue) in the database" }
        if !isValidVersion(version, ecosystem: ecosystem) { return "version \"\(version)\" is not a valid \(ecosystem.rawValue) version" }
        return nil
    }

    /// Imports OSV records from files, directories (recursively: .yaml, .yml, .json) and OSV
    /// export zips (`<ecosystem>/all.zip`). Incremental: a record whose content is what is stored
    /// is left alone; a record that was imported from the same source (file, directory or zip)
    /// before and is no longer in it is removed. All or nothing: a file that is not a valid record
    /// aborts the import, naming the file and field, and leaves the database as it was.
    /// `progress` is called with (done, total).
    public func importRecords(from paths: [String], progress: (Int, Int) -> Void = { _, _ in }) throws(Failure) -> ImportSummary {
        let start = MonotonicClock.now
        // (source, display name, bytes loader): plain files are read when their turn comes;
        // members of a .zip dump are read through the archive limits.
        var files: [(source: String, file: String, load: () throws -> [UInt8])] = []
        let isRecord = { (name: String) in [".yaml", ".yml", ".json"].contains(where: name.hasSuffix) }
        var sources: [String] = []
        for given in paths {
            let path = FileSystem.absolute(given)
            if !sources.contains(path) { sources.append(path) }
            switch FileSystem.kind(path) {
            case .directory:
                do {
                    for file in try FileSystem.regularFiles(under: path) where isRecord(file) {
                        files.append((path, file, { try FileSystem.read(file, limit: 8 << 20) }))
                    }
                } catch { throw Failure(description: "\(error)") }
            case .file where path.hasSuffix(".zip"):
                // An OSV export: one JSON record a member, tens of thousands of members.
                var limits = ArchiveLimits()
                limits.entryCount = 2_000_000
                limits.totalBytes = 16 << 30
                limits.entryBytes = 8 << 20
                do {
                    try ArchiveReader(path: path, limits: limits).forEach { entry, read in
                        guard entry.kind == .file, isRecord(entry.path) else { return }
                        let bytes = try read()
                        files.append((path, "\(path)!\(entry.path)", { bytes }))
                    }
                } catch { throw Failure(description: "\(error)") }
            case .file: files.append((path, path, { try FileSystem.read(path, limit: 8 << 20) }))
            case .missing: throw Failure(description: "\(given): no such file or directory")
            default: throw Failure(description: "\(given): not a file or directory")
            }
        }
        var summary = ImportSummary(files: files.count, records: 0, added: 0, changed: 0, unchanged: 0, removed: 0,
                                    withdrawn: 0, skipped: 0, seconds: 0)
        var perSource: [String: Status.Counts] = [:]
        for source in sources { perSource[source] = Status.Counts(added: 0, changed: 0, unchanged: 0, removed: 0) }
        do {
            try db.transaction {
                let stored = try db.prepare("SELECT hash FROM records WHERE id = ?1")
                let deleteAffected = try db.prepare("DELETE FROM affected WHERE record_id = ?1")
                let deleteRecord = try db.prepare("DELETE FROM records WHERE id = ?1")
                let insertRecord = try db.prepare("""
                    INSERT OR REPLACE INTO records (id, modified, published, withdrawn, summary, aliases, source, details,
                        severity, score, cvss, url, hash, origin) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
                    """)
                let moveRecord = try db.prepare("UPDATE records SET source = ?2, origin = ?3 WHERE id = ?1")
                let insertAffected = try db.prepare("INSERT INTO affected VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
                var seen: [String: Set<String>] = [:]
                for (i, entry) in files.enumerated() {
                    let bytes: [UInt8]
                    do { bytes = try entry.load() } catch { throw Failure(description: "\(entry.file): \(error)") }
                    let advisory: StoredAdvisory
                    do { advisory = try OSVDecoder.decode(bytes) } catch {
                        throw Failure(description: "\(entry.file): \(error)")
                    }
                    let record = advisory.record
                    var hasher = SHA256()
                    hasher.update(Array("\(Self.decoderVersion)\n".utf8))
                    hasher.update(bytes)
                    let hash = hasher.hexDigest()
                    summary.records += 1
                    if record.withdrawn != nil { summary.withdrawn += 1 }
                    if i % 200 == 0 || i == files.count - 1 { progress(i + 1, files.count) }
                    // The same record twice in one import (two sources, or a file and its copy): counted once.
                    let again = seen.values.contains { $0.contains(record.id) }
                    seen[entry.source, default: []].insert(record.id)
                    let previous = try stored.rows([record.id]).first
                    if let previous, previous[0] == hash {
                        try moveRecord.run([record.id, entry.file, entry.source])
                        if !again { summary.unchanged += 1; perSource[entry.source]?.unchanged += 1 }
                        continue
                    }
                    if !again {
                        if previous == nil { summary.added += 1; perSource[entry.source]?.added += 1 }
                        else { summary.changed += 1; perSource[entry.source]?.changed += 1 }
                    }
                    let severity = advisory.severity
                    try deleteAffected.run([record.id])
                    try insertRecord.run([record.id, advisory.modified, advisory.published, record.withdrawn, record.summary,
                                          record.aliases.joined(separator: "\n"), entry.file, advisory.details,
                                          severity?.level, severity?.score.map { String($0) },
                                          advisory.scores.joined(separator: "\n"), advisory.url, hash, entry.source])
                    for affected in record.affected {
                        let full = affected.package.ecosystem
                        let base = String(full.split(separator: ":", maxSplits: 1).first ?? "")
                        let name = Ecosystem(osv: full)?.normalizedName(affected.package.name) ?? affected.package.name
                        try insertAffected.run([record.id, base, full, name, RangeCoding.encode(affected.ranges),
                                                affected.versions.joined(separator: "\n")])
                    }
                }
                // Records a source held before and no longer holds.
                let previous = try db.prepare("SELECT id FROM records WHERE origin = ?1")
                for source in sources {
                    let kept = seen[source] ?? []
                    for row in try previous.rows([source]) {
                        guard let id = row[0], !kept.contains(id) else { continue }
                        try deleteAffected.run([id])
                        try deleteRecord.run([id])
                        summary.removed += 1
                        perSource[source]?.removed += 1
                    }
                }
                let now = UTCTime.now()
                let upsertSource = try db.prepare("""
                    INSERT OR REPLACE INTO sources (path, imported_at, records, added, changed, unchanged, removed)
                    VALUES (?1, ?2, (SELECT COUNT(*) FROM records WHERE origin = ?1), ?3, ?4, ?5, ?6)
                    """)
                for source in sources {
                    let c = perSource[source] ?? Status.Counts(added: 0, changed: 0, unchanged: 0, removed: 0)
                    try upsertSource.run([source, now, String(c.added), String(c.changed), String(c.unchanged), String(c.removed)])
                }
                // A record that moved to another source leaves its old one's count behind.
                try db.execute("UPDATE sources SET records = (SELECT COUNT(*) FROM records WHERE origin = sources.path)")
            }
            try loadCounts()
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
        try match(ecosystem: ecosystem, name: name, version: version).map(\.id)
    }

    /// The advisories (not withdrawn) that affect `name` at `version`, sorted by ID, with their
    /// summary, severity, affected ranges and fixed versions.
    public func match(ecosystem: Ecosystem, name: String, version: String) throws(Failure) -> [Advisory] {
        do {
            let query = try db.prepare("""
                SELECT a.record_id, a.ecosystem_full, a.ranges, a.versions, r.withdrawn FROM affected a
                JOIN records r ON r.id = a.record_id WHERE a.ecosystem = ?1 AND a.name = ?2
                """)
            var entries: [String: [OSVRecord.Affected]] = [:]
            for row in try query.rows([ecosystem.rawValue, ecosystem.normalizedName(name)]) {
                guard let id = row[0], let full = row[1], row[4] == nil else { continue }
                entries[id, default: []].append(OSVRecord.Affected(package: .init(ecosystem: full, name: name),
                                                                   ranges: RangeCoding.decode(row[2] ?? ""),
                                                                   versions: (row[3] ?? "").split(separator: "\n").map(String.init)))
            }
            let details = try db.prepare("""
                SELECT aliases, summary, details, severity, score, cvss, published, modified, url FROM records WHERE id = ?1
                """)
            var out: [Advisory] = []
            for (id, affected) in entries.sorted(by: { $0.key < $1.key }) {
                let record = OSVRecord(id: id, affected: affected)
                guard affects(record, ecosystem: ecosystem, name: name, version: version) else { continue }
                let d = describeAffected(record, ecosystem: ecosystem, name: name, version: version)
                let row = try details.rows([id]).first ?? []
                func col(_ i: Int) -> String? { i < row.count ? row[i].flatMap { $0.isEmpty ? nil : $0 } : nil }
                out.append(Advisory(id: id, aliases: col(0)?.split(separator: "\n").map(String.init) ?? [], summary: col(1),
                                    details: col(2), severity: col(3), score: col(4).flatMap { Double($0) },
                                    cvss: col(5)?.split(separator: "\n").map { $0.replacingTab() } ?? [],
                                    affected: d.ranges, fixed: d.fixed, fixedIn: d.fixedIn,
                                    published: col(6), modified: col(7), url: col(8) ?? "https://osv.dev/vulnerability/\(id)"))
            }
            return out
        } catch { throw Failure(description: "query: \(error)") }
    }

    public func status() throws(Failure) -> Status {
        do {
            let count = { (sql: String) throws -> Int in Int(try self.db.prepare(sql).rows([]).first?.first??.description ?? "0") ?? 0 }
            var byEcosystem: [String: Int] = [:]
            for row in try db.prepare("SELECT ecosystem, COUNT(DISTINCT record_id) FROM affected GROUP BY ecosystem").rows([]) {
                if let e = row[0], let n = row[1].flatMap({ Int($0) }) { byEcosystem[e] = n }
            }
            let perEcosystem = try db.prepare("""
                SELECT a.ecosystem, COUNT(DISTINCT a.record_id) FROM affected a JOIN records r ON r.id = a.record_id
                WHERE r.origin = ?1 GROUP BY a.ecosystem
                """)
            let newestOf = try db.prepare("""
                SELECT MAX(modified), CAST(julianday('now') - julianday(MAX(modified)) AS INTEGER) FROM records WHERE origin = ?1
                """)
            let sources = try db.prepare("""
                SELECT path, imported_at, records, added, changed, unchanged, removed,
                    CAST(julianday('now') - julianday(imported_at) AS INTEGER) FROM sources ORDER BY path
                """).rows([]).map { row -> Status.Source in
                let path = row[0] ?? ""
                var ecosystems: [String: Int] = [:]
                for e in try perEcosystem.rows([path]) { if let name = e[0], let n = e[1].flatMap({ Int($0) }) { ecosystems[name] = n } }
                let newest = try newestOf.rows([path]).first ?? []
                func int(_ i: Int) -> Int { Int(row[i] ?? "0") ?? 0 }
                return Status.Source(path: path, importedAt: row[1] ?? "", importedAgeDays: row[7].flatMap { Int($0) },
                                     records: int(2), byEcosystem: ecosystems,
                                     newestModified: newest.first ?? nil, newestAgeDays: newest.count > 1 ? newest[1].flatMap { Int($0) } : nil,
                                     lastImport: .init(added: int(3), changed: int(4), unchanged: int(5), removed: int(6)))
            }
            let newest = try db.prepare("SELECT MAX(modified) FROM records").rows([]).first?.first ?? nil
            let age = try db.prepare("SELECT CAST(julianday('now') - julianday(MAX(modified)) AS INTEGER) FROM records").rows([]).first?.first ?? nil
            return Status(path: path, records: try count("SELECT COUNT(*) FROM records"),
                          withdrawn: try count("SELECT COUNT(*) FROM records WHERE withdrawn IS NOT NULL"),
                          byEcosystem: byEcosystem,
                          newestModified: newest, newestAgeDays: age.flatMap { Int($0) },
                          sources: sources)
        } catch { throw Failure(description: "status: \(error)") }
    }
}

extension Substring {
    /// "CVSS_V3<TAB>vector" → "CVSS_V3 vector".
    func replacingTab() -> String { split(separator: "\t", maxSplits: 1).joined(separator: " ") }
}
