-- Dagster's own run and event storage lives beside the project's database.
CREATE DATABASE dagster OWNER coinswarm;
