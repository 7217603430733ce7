//! Functions: a project's declared requests, each on one of its integrations.

use sqlx::FromRow;

use super::{on_pool, Store, StoreResult};

#[derive(Debug, Clone, FromRow)]
pub struct FunctionRow {
    pub id: String,
    pub project_id: String,
    pub integration_id: String,
    /// The integration's key, as clients name it.
    pub integration: String,
    pub name: String,
    pub config: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const SELECT: &str = "SELECT f.id, f.project_id, f.integration_id, i.key AS integration, f.name, \
     f.config, f.created_at, f.updated_at FROM functions f JOIN integrations i ON i.id = f.integration_id";

impl Store {
    /// Saves a new function; a name the project already uses is a unique violation.
    pub async fn insert_function(
        &self,
        project_id: &str,
        integration_id: &str,
        name: &str,
        config: &str,
        now: i64,
    ) -> StoreResult<String> {
        let id = crate::ids::new_id("fn");
        on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO functions (id, project_id, integration_id, name, config, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(&id)
            .bind(project_id)
            .bind(integration_id)
            .bind(name)
            .bind(config)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(id)
    }

    pub async fn list_functions(&self, project_id: &str) -> StoreResult<Vec<FunctionRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, FunctionRow>(&format!(
                "{SELECT} WHERE f.project_id = $1 ORDER BY f.name"
            ))
            .bind(project_id)
            .fetch_all(pool)
            .await?
        }))
    }

    pub async fn get_function(
        &self,
        project_id: &str,
        name: &str,
    ) -> StoreResult<Option<FunctionRow>> {
        Ok(on_pool!(self, |pool| {
            sqlx::query_as::<_, FunctionRow>(&format!(
                "{SELECT} WHERE f.project_id = $1 AND f.name = $2"
            ))
            .bind(project_id)
            .bind(name)
            .fetch_optional(pool)
            .await?
        }))
    }

    /// Replaces a function's definition. False when there was none.
    pub async fn update_function(
        &self,
        project_id: &str,
        name: &str,
        integration_id: &str,
        config: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let updated = on_pool!(self, |pool| {
            sqlx::query(
                "UPDATE functions SET integration_id = $1, config = $2, updated_at = $3 \
                 WHERE project_id = $4 AND name = $5",
            )
            .bind(integration_id)
            .bind(config)
            .bind(now)
            .bind(project_id)
            .bind(name)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(updated == 1)
    }

    /// Deletes a function. False when there was none.
    pub async fn delete_function(&self, project_id: &str, name: &str) -> StoreResult<bool> {
        let deleted = on_pool!(self, |pool| {
            sqlx::query("DELETE FROM functions WHERE project_id = $1 AND name = $2")
                .bind(project_id)
                .bind(name)
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(deleted == 1)
    }
}
