//! PostgreSQL for the parts that store there: a fresh schema per run on the server of
//! `--postgres URL`, dropped afterwards, and the acknowledgement latencies read from it.

use anyhow::{Context, Result};

/// A schema of its own on the benchmark's PostgreSQL server.
pub struct BenchSchema {
    base: String,
    name: String,
}

async fn connect(base: &str) -> Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .with_context(|| "connecting to PostgreSQL (is it running? see --postgres)".to_string())?;
    tokio::spawn(conn);
    Ok(client)
}

impl BenchSchema {
    pub async fn create(base: &str, label: &str) -> Result<Self> {
        let name = format!("bench_{label}_{}", std::process::id());
        let c = connect(base).await?;
        c.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
        ))
        .await?;
        Ok(Self {
            base: base.to_string(),
            name,
        })
    }

    /// The server's URL with this schema as every connection's `search_path`.
    pub fn url(&self) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}options=-c%20search_path%3D{}", self.base, self.name)
    }

    /// The database's name (the last path segment of the server's URL).
    pub fn database(&self) -> String {
        let path = self.base.split('?').next().unwrap_or_default();
        path.rsplit('/').next().unwrap_or_default().to_string()
    }

    /// Seconds from acceptance to acknowledgement of every key, sorted.
    pub async fn latencies(&self) -> Result<Vec<f64>> {
        let c = connect(&self.url()).await?;
        let rows = c
            .query(
                "SELECT ack_ms - accepted_ms FROM desired WHERE ack_ms IS NOT NULL",
                &[],
            )
            .await?;
        let mut v: Vec<f64> = rows
            .iter()
            .map(|r| r.get::<_, i64>(0) as f64 / 1000.0)
            .collect();
        v.sort_by(f64::total_cmp);
        Ok(v)
    }

    pub async fn drop_schema(self) -> Result<()> {
        let c = connect(&self.base).await?;
        c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
            .await?;
        Ok(())
    }
}
