import CSQLite
import Synchronization

/// A SQLite connection with one owner; statements are prepared, bound and finalised through it.
public final class SQLiteDatabase: @unchecked Sendable {
    public struct Failure: Error, CustomStringConvertible {
        public var operation: String
        public var message: String
        public init(operation: String, message: String) { self.operation = operation; self.message = message }
        public var description: String { "\(operation): \(message)" }
    }

    private var handle: OpaquePointer?
    public let path: String

    /// Opens (creating if `create`) the database at `path`. `followSymlinks: false` refuses a
    /// path whose last component is a symbolic link.
    public init(path: String, create: Bool = true, followSymlinks: Bool = true) throws(Failure) {
        self.path = path
        // Serialized: one connection may be used from several threads (each call prepares its own statements).
        var flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX
        if create { flags |= SQLITE_OPEN_CREATE }
        if !followSymlinks { flags |= SQLITE_OPEN_NOFOLLOW }
        if sqlite3_open_v2(path, &handle, flags, nil) != SQLITE_OK {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(handle)
            handle = nil
            throw Failure(operation: "open \(path)", message: message)
        }
        sqlite3_busy_timeout(handle, 5000)
    }

    /// Opens the database at `path` read-only: nothing is created or written, so any user who can
    /// read the file can query it. `immutable` also takes no locks and ignores journals (for a
    /// WAL database whose -shm file the reader cannot create); only for a file nobody writes meanwhile.
    public init(readingAt path: String, immutable: Bool = false) throws(Failure) {
        self.path = path
        var flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_URI
        if !immutable { flags &= ~SQLITE_OPEN_URI }
        let name = immutable ? "file:\(Self.uriEscaped(path))?immutable=1" : path
        if sqlite3_open_v2(name, &handle, flags, nil) != SQLITE_OK {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(handle)
            handle = nil
            throw Failure(operation: "open \(path)", message: message)
        }
        sqlite3_busy_timeout(handle, 5000)
    }

    /// A path as the path part of a `file:` URI (RFC 3986: `%`, `?` and `#` escaped, and
    /// anything outside the unreserved characters and `/`).
    static func uriEscaped(_ path: String) -> String {
        var out = ""
        for byte in path.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "/"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".unicodeScalars)
                out += "%"
                out.unicodeScalars.append(hex[Int(byte >> 4)])
                out.unicodeScalars.append(hex[Int(byte & 15)])
            }
        }
        return out
    }

    deinit {
        // Every statement is finalised before the close, or the close fails and leaks the connection.
        for statement in kept.withLock({ $0.set }).values { sqlite3_finalize(statement.pointer) }
        sqlite3_close(handle)
    }

    /// A prepared statement kept between calls (`rows(_:binding:)`); finalised by the connection.
    private struct Kept: @unchecked Sendable {
        let pointer: OpaquePointer
        /// When it was last put back (`uses`), for making room: the least recently used goes.
        var used: UInt64 = 0
    }
    /// Statements kept for the next call of the same text, at most `keptLimit` of them, and a
    /// count of puts. One in use is taken out, so two threads (or a nested call) never share it.
    private let kept = Mutex<(set: [String: Kept], uses: UInt64)>(([:], 0))
    public static let keptLimit = 64
    /// How many statements are kept now.
    public var keptStatements: Int { kept.withLock { $0.set.count } }

    /// Whether a statement of `sql` is kept now.
    public func keeps(_ sql: String) -> Bool { kept.withLock { $0.set[sql] != nil } }

    /// Runs `sql` with `values` bound and returns its rows, through a prepared statement kept
    /// for the next call of the same text: preparing parses and plans the SQL each time, which
    /// for a query like the audit store's task lookup costs more than running it. Up to
    /// `keptLimit` texts are kept (SQL built with values in it would otherwise grow the set),
    /// the least recently used making room for a new one.
    public func rows(_ sql: String, binding values: [SQLiteValue]) throws(Failure) -> [[SQLiteValue]] {
        let pointer: OpaquePointer
        if let taken = kept.withLock({ $0.set.removeValue(forKey: sql) }) { pointer = taken.pointer } else { pointer = try compile(sql) }
        let statement = Statement(statement: pointer, database: self, finalises: false)
        // Reset and unbound whatever happens (`rows` resets; the bound copies are let go here),
        // then kept; when the set is full, the least recently used makes room (texts built
        // with values in them must not hold every place for good), and is finalised.
        defer {
            sqlite3_clear_bindings(statement.statement)
            let drop: Kept? = kept.withLock { k in
                k.uses &+= 1
                let this = Kept(pointer: statement.statement, used: k.uses)
                if k.set[sql] != nil { return this }  // another call kept one meanwhile
                var evicted: Kept?
                if k.set.count >= Self.keptLimit, let oldest = k.set.min(by: { $0.value.used < $1.value.used }) {
                    k.set[oldest.key] = nil
                    evicted = oldest.value
                }
                k.set[sql] = this
                return evicted
            }
            if let drop { sqlite3_finalize(drop.pointer) }
        }
        return try statement.rows(binding: values)
    }

    /// Pages in the write-ahead log after this connection's last commit (`keepLogPages`).
    private let walPages = Atomic<Int32>(0)

    /// Ends SQLite's automatic checkpoints on this connection — one runs on whichever thread
    /// commits past 1000 pages of log, copying pages and syncing files there — and keeps the
    /// log's size after each commit instead (`logPages`), for the owner to checkpoint on a
    /// thread of its choosing.
    public func keepLogPages() {
        let context = Unmanaged.passUnretained(self).toOpaque()
        sqlite3_wal_hook(handle, { context, _, _, pages in
            if let context { Unmanaged<SQLiteDatabase>.fromOpaque(context).takeUnretainedValue().walPages.store(pages, ordering: .relaxed) }
            return SQLITE_OK
        }, context)
    }

    /// Pages in the write-ahead log after this connection's last commit, once `keepLogPages`
    /// was called (0 before).
    public var logPages: Int { Int(walPages.load(ordering: .relaxed)) }

    public func execute(_ sql: String) throws(Failure) {
        var error: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(handle, sql, nil, nil, &error) != SQLITE_OK {
            let message = error.map { String(cString: $0) } ?? "error"
            sqlite3_free(error)
            throw Failure(operation: "execute", message: message)
        }
    }

    public func prepare(_ sql: String) throws(Failure) -> Statement {
        Statement(statement: try compile(sql), database: self)
    }

    private func compile(_ sql: String) throws(Failure) -> OpaquePointer {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(handle, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
            throw Failure(operation: "prepare", message: String(cString: sqlite3_errmsg(handle)))
        }
        return statement
    }

    public var lastError: String { String(cString: sqlite3_errmsg(handle)) }

    /// The rowid of the last row this connection inserted.
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Whether a transaction is open (false after SQLite rolled one back on its own, e.g. on an I/O error).
    public var inTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// Rows changed by the last INSERT, UPDATE or DELETE on this connection.
    public var changes: Int { Int(sqlite3_changes(handle)) }

    /// Runs `body` in one transaction: committed if it returns, rolled back if it throws.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let value = try body()
            try execute("COMMIT")
            return value
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }
}

/// A value bound to or read from a statement, in SQLite's own storage classes.
public enum SQLiteValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])

    public init(_ value: String?) { self = value.map { .text($0) } ?? .null }
    public init(_ value: Int64?) { self = value.map { .integer($0) } ?? .null }
    public init(_ value: Double?) { self = value.map { .real($0) } ?? .null }

    public var isNull: Bool { self == .null }
}

/// A prepared statement; finalised when released.
public final class Statement {
    fileprivate let statement: OpaquePointer
    private let database: SQLiteDatabase
    /// False for a statement the connection keeps (`SQLiteDatabase.rows(_:binding:)`).
    private let finalises: Bool
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    init(statement: OpaquePointer, database: SQLiteDatabase, finalises: Bool = true) {
        self.statement = statement
        self.database = database
        self.finalises = finalises
    }

    deinit { if finalises { sqlite3_finalize(statement) } }

    public func bind(_ values: [String?]) {
        sqlite3_reset(statement)
        sqlite3_clear_bindings(statement)
        for (i, value) in values.enumerated() {
            if let value { sqlite3_bind_text(statement, Int32(i + 1), value, -1, Statement.transient) }
            else { sqlite3_bind_null(statement, Int32(i + 1)) }
        }
    }

    /// Executes a statement that returns no rows.
    public func run(_ values: [String?]) throws(SQLiteDatabase.Failure) {
        bind(values)
        let code = sqlite3_step(statement)
        guard code == SQLITE_DONE else { throw SQLiteDatabase.Failure(operation: "step", message: database.lastError) }
    }

    /// Binds typed values (parameter `?N` gets `values[N-1]`). Text and blobs are bound with
    /// their byte length, so an embedded NUL survives.
    public func bind(values: [SQLiteValue]) {
        sqlite3_reset(statement)
        sqlite3_clear_bindings(statement)
        for (i, value) in values.enumerated() {
            let index = Int32(i + 1)
            switch value {
            case .null: sqlite3_bind_null(statement, index)
            case .integer(let v): sqlite3_bind_int64(statement, index, v)
            case .real(let v): sqlite3_bind_double(statement, index, v)
            case .text(let v):
                var v = v
                v.withUTF8 { bytes in
                    // A NULL pointer would bind SQL NULL, so "" is bound from a literal.
                    guard let base = bytes.baseAddress, !bytes.isEmpty else {
                        sqlite3_bind_text(statement, index, "", 0, Statement.transient)
                        return
                    }
                    base.withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                        _ = sqlite3_bind_text64(statement, index, $0, UInt64(bytes.count), Statement.transient, UInt8(SQLITE_UTF8))
                    }
                }
            case .blob(let v):
                v.withUnsafeBytes { bytes in
                    guard let base = bytes.baseAddress, !bytes.isEmpty else {
                        sqlite3_bind_zeroblob(statement, index, 0)
                        return
                    }
                    sqlite3_bind_blob64(statement, index, base, UInt64(bytes.count), Statement.transient)
                }
            }
        }
    }

    /// Executes a statement with typed parameters, discarding any rows; the statement is reset
    /// afterwards so it holds no locks.
    public func run(binding values: [SQLiteValue]) throws(SQLiteDatabase.Failure) {
        _ = try rows(binding: values)
    }

    /// Executes a query with typed parameters and returns its rows with typed columns; the
    /// statement is reset afterwards so it holds no locks.
    public func rows(binding values: [SQLiteValue]) throws(SQLiteDatabase.Failure) -> [[SQLiteValue]] {
        bind(values: values)
        defer { sqlite3_reset(statement) }
        var out: [[SQLiteValue]] = []
        while true {
            let code = sqlite3_step(statement)
            if code == SQLITE_DONE { return out }
            guard code == SQLITE_ROW else { throw SQLiteDatabase.Failure(operation: "step", message: database.lastError) }
            let count = sqlite3_column_count(statement)
            out.append((0..<count).map(column))
        }
    }

    private func column(_ index: Int32) -> SQLiteValue {
        switch sqlite3_column_type(statement, index) {
        case SQLITE_INTEGER: return .integer(sqlite3_column_int64(statement, index))
        case SQLITE_FLOAT: return .real(sqlite3_column_double(statement, index))
        case SQLITE_TEXT:
            // Text, then bytes: sqlite3_column_bytes after sqlite3_column_text gives the UTF-8 length.
            let text = sqlite3_column_text(statement, index)
            let count = Int(sqlite3_column_bytes(statement, index))
            guard let text else { return .text("") }
            return .text(String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self))
        case SQLITE_BLOB:
            let blob = sqlite3_column_blob(statement, index)
            let count = Int(sqlite3_column_bytes(statement, index))
            guard let blob else { return .blob([]) }
            return .blob(Array(UnsafeRawBufferPointer(start: blob, count: count)))
        default: return .null
        }
    }

    /// Executes a query and returns its rows as text columns.
    public func rows(_ values: [String?]) throws(SQLiteDatabase.Failure) -> [[String?]] {
        bind(values)
        var out: [[String?]] = []
        while true {
            let code = sqlite3_step(statement)
            if code == SQLITE_DONE { return out }
            guard code == SQLITE_ROW else { throw SQLiteDatabase.Failure(operation: "step", message: database.lastError) }
            let count = sqlite3_column_count(statement)
            out.append((0..<count).map { column in
                sqlite3_column_text(statement, column).map { String(cString: $0) }
            })
        }
    }
}
