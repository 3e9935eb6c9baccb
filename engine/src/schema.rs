//! The columns of the `events` table and how each is stored.

/// A column of the event schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Column {
    /// Event time (µs since epoch, UTC). Stored per-key delta encoded.
    Ts,
    /// Tenant key. Stored only as the chunk key directory.
    ApiKey,
    /// Normalised path. Dictionary + bitmap index.
    Endpoint,
    /// HTTP method. Dictionary + bitmap index.
    Method,
    /// HTTP status. Integer + bitmap index.
    StatusCode,
    /// Latency in ms. ALP float codec.
    LatencyMs,
    /// Request bytes.
    RequestBytes,
    /// Response bytes.
    ResponseBytes,
    /// Client IP, as 4 or 16 address bytes.
    Ip,
    /// User agent. Dictionary.
    UserAgent,
    /// Country. Dictionary + bitmap index.
    GeoCountry,
    /// Request id (NULL when absent). Plain or dictionary by cardinality.
    RequestId,
}

impl Column {
    /// Every column in schema order.
    pub const ALL: [Column; 12] = [
        Column::Ts,
        Column::ApiKey,
        Column::Endpoint,
        Column::Method,
        Column::StatusCode,
        Column::LatencyMs,
        Column::RequestBytes,
        Column::ResponseBytes,
        Column::Ip,
        Column::UserAgent,
        Column::GeoCountry,
        Column::RequestId,
    ];

    /// The column's name.
    pub fn name(self) -> &'static str {
        match self {
            Column::Ts => "ts",
            Column::ApiKey => "api_key",
            Column::Endpoint => "endpoint",
            Column::Method => "method",
            Column::StatusCode => "status_code",
            Column::LatencyMs => "latency_ms",
            Column::RequestBytes => "request_bytes",
            Column::ResponseBytes => "response_bytes",
            Column::Ip => "ip",
            Column::UserAgent => "user_agent",
            Column::GeoCountry => "geo_country",
            Column::RequestId => "request_id",
        }
    }

    /// The column called `name`.
    pub fn from_name(name: &str) -> Option<Column> {
        Column::ALL.into_iter().find(|c| c.name() == name)
    }

    /// True for the columns with a bitmap per distinct value in chunks.
    pub fn has_bitmap_index(self) -> bool {
        matches!(
            self,
            Column::Endpoint | Column::Method | Column::StatusCode | Column::GeoCountry
        )
    }

    /// True for text columns (and `ip`, stored as bytes).
    pub fn is_bytes(self) -> bool {
        matches!(
            self,
            Column::ApiKey
                | Column::Endpoint
                | Column::Method
                | Column::Ip
                | Column::UserAgent
                | Column::GeoCountry
                | Column::RequestId
        )
    }
}

impl std::fmt::Display for Column {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
