//! Flight SQL metadata: what `GetSqlInfo`, `GetCatalogs`, `GetDbSchemas`,
//! `GetTables`, `GetTableTypes`, `GetPrimaryKeys` and `GetXdbcTypeInfo`
//! return. Catalogs, schemas and tables come from the caller's session, so
//! a user sees only what their grants allow. The filter patterns of the
//! commands are applied by arrow-flight's builders.

use arrow::datatypes::{DataType, Field, Schema};
use arrow_flight::error::FlightError;
use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    Nullable, Searchable, SqlInfo, SqlNullOrdering, SqlSupportedCaseSensitivity, XdbcDataType,
};
use datafusion::datasource::TableType;
use spar_engine::catalog::DEFAULT_CATALOG;
use spar_engine::Session;
use tonic::Status;

/// The table types Spar reports.
pub(crate) const TABLE_TYPES: [&str; 2] = ["TABLE", "VIEW"];

/// What the server tells clients about itself.
pub(crate) fn sql_info() -> Result<SqlInfoData, FlightError> {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "Spar");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, arrow::ARROW_VERSION);
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(SqlInfo::FlightSqlServerTransaction, 0i32);
    b.append(SqlInfo::FlightSqlServerCancel, true);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    b.append(
        SqlInfo::SqlIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32,
    );
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.append(
        SqlInfo::SqlQuotedIdentifierCase,
        SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32,
    );
    b.append(SqlInfo::SqlAllTablesAreSelectable, true);
    b.append(
        SqlInfo::SqlNullOrdering,
        SqlNullOrdering::SqlNullsSortedHigh as i32,
    );
    b.append(SqlInfo::SqlSearchStringEscape, "\\");
    b.append(SqlInfo::SqlTransactionsSupported, false);
    b.build()
}

fn xdbc(
    name: &str,
    data_type: XdbcDataType,
    column_size: Option<i32>,
    literal: Option<&str>,
) -> XdbcTypeInfo {
    XdbcTypeInfo {
        type_name: name.into(),
        data_type,
        column_size,
        literal_prefix: literal.map(Into::into),
        literal_suffix: literal.map(Into::into),
        create_params: None,
        nullable: Nullable::NullabilityNullable,
        case_sensitive: literal.is_some(),
        searchable: Searchable::Full,
        unsigned_attribute: Some(false),
        fixed_prec_scale: false,
        auto_increment: Some(false),
        local_type_name: Some(name.into()),
        minimum_scale: None,
        maximum_scale: None,
        sql_data_type: data_type,
        datetime_subcode: None,
        num_prec_radix: None,
        interval_precision: None,
    }
}

/// The SQL types Spar's dialect accepts (in casts and literals).
pub(crate) fn xdbc_types() -> Result<XdbcTypeInfoData, FlightError> {
    let mut b = XdbcTypeInfoDataBuilder::new();
    b.append(xdbc("BOOLEAN", XdbcDataType::XdbcBit, Some(1), None));
    b.append(xdbc("TINYINT", XdbcDataType::XdbcTinyint, Some(3), None));
    b.append(xdbc("SMALLINT", XdbcDataType::XdbcSmallint, Some(5), None));
    b.append(xdbc("INTEGER", XdbcDataType::XdbcInteger, Some(10), None));
    b.append(xdbc("BIGINT", XdbcDataType::XdbcBigint, Some(19), None));
    b.append(xdbc("REAL", XdbcDataType::XdbcReal, Some(7), None));
    b.append(xdbc("DOUBLE", XdbcDataType::XdbcDouble, Some(15), None));
    let mut decimal = xdbc("DECIMAL", XdbcDataType::XdbcDecimal, Some(38), None);
    decimal.create_params = Some(vec!["precision".into(), "scale".into()]);
    decimal.fixed_prec_scale = true;
    decimal.minimum_scale = Some(0);
    decimal.maximum_scale = Some(38);
    decimal.num_prec_radix = Some(10);
    b.append(decimal);
    b.append(xdbc("VARCHAR", XdbcDataType::XdbcVarchar, None, Some("'")));
    b.append(xdbc("DATE", XdbcDataType::XdbcDate, Some(10), Some("'")));
    b.append(xdbc("TIME", XdbcDataType::XdbcTime, Some(8), Some("'")));
    b.append(xdbc(
        "TIMESTAMP",
        XdbcDataType::XdbcTimestamp,
        Some(26),
        Some("'"),
    ));
    b.append(xdbc("BYTEA", XdbcDataType::XdbcVarbinary, None, None));
    b.build()
}

/// The sources the session may read, as Flight SQL catalogs.
pub(crate) fn catalogs(session: &Session) -> Vec<String> {
    let mut names: Vec<String> = session
        .context()
        .state()
        .catalog_list()
        .catalog_names()
        .into_iter()
        .filter(|c| c != DEFAULT_CATALOG)
        .collect();
    names.sort();
    names
}

/// Every (catalog, schema) the session may read.
pub(crate) fn schemas(session: &Session) -> Vec<(String, String)> {
    let state = session.context().state();
    let list = state.catalog_list();
    let mut out = Vec::new();
    for catalog in catalogs(session) {
        let Some(provider) = list.catalog(&catalog) else {
            continue;
        };
        let mut names = provider.schema_names();
        names.sort();
        out.extend(names.into_iter().map(|s| (catalog.clone(), s)));
    }
    out
}

/// One table, for `GetTables`.
pub(crate) struct TableEntry {
    pub(crate) catalog: String,
    pub(crate) schema: String,
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    pub(crate) arrow_schema: Schema,
}

/// Every table the session may read.
pub(crate) async fn tables(session: &Session) -> Result<Vec<TableEntry>, Status> {
    let state = session.context().state();
    let list = state.catalog_list();
    let mut out = Vec::new();
    for (catalog, schema) in schemas(session) {
        let Some(provider) = list.catalog(&catalog).and_then(|c| c.schema(&schema)) else {
            continue;
        };
        let mut names = provider.table_names();
        names.sort();
        for name in names {
            let table = provider.table(&name).await.map_err(|e| {
                Status::internal(format!("cannot read table {catalog}.{schema}.{name}: {e}"))
            })?;
            let Some(table) = table else { continue };
            let kind = match table.table_type() {
                TableType::View => "VIEW",
                TableType::Base | TableType::Temporary => "TABLE",
            };
            out.push(TableEntry {
                catalog: catalog.clone(),
                schema: schema.clone(),
                name,
                kind,
                arrow_schema: table.schema().as_ref().clone(),
            });
        }
    }
    Ok(out)
}

/// The result schema of `GetPrimaryKeys`, as the Flight SQL spec gives it.
pub(crate) fn primary_keys_schema() -> Schema {
    Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ])
}
