-- One Postgres, one database per component.
CREATE DATABASE airflow;
CREATE DATABASE mlflow;
CREATE DATABASE feast;
