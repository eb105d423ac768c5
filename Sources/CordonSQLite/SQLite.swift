import CSQLite

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

    public init(path: String) throws(Failure) {
        self.path = path
        // Serialized: one connection may be used from several threads (each call prepares its own statements).
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX
        if sqlite3_open_v2(path, &handle, flags, nil) != SQLITE_OK {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(handle)
            handle = nil
            throw Failure(operation: "open \(path)", message: message)
        }
        sqlite3_busy_timeout(handle, 5000)
    }

    deinit { sqlite3_close(handle) }

    public func execute(_ sql: String) throws(Failure) {
        var error: UnsafeMutablePointer<CChar>?
        if sqlite3_exec(handle, sql, nil, nil, &error) != SQLITE_OK {
            let message = error.map { String(cString: $0) } ?? "error"
            sqlite3_free(error)
            throw Failure(operation: "execute", message: message)
        }
    }

    public func prepare(_ sql: String) throws(Failure) -> Statement {
        var statement: OpaquePointer?
        guard sqlite3_prepare_v2(handle, sql, -1, &statement, nil) == SQLITE_OK, let statement else {
            throw Failure(operation: "prepare", message: String(cString: sqlite3_errmsg(handle)))
        }
        return Statement(statement: statement, database: self)
    }

    public var lastError: String { String(cString: sqlite3_errmsg(handle)) }

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

/// A prepared statement; finalised when released.
public final class Statement {
    private let statement: OpaquePointer
    private let database: SQLiteDatabase
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    init(statement: OpaquePointer, database: SQLiteDatabase) {
        self.statement = statement
        self.database = database
    }

    deinit { sqlite3_finalize(statement) }

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
