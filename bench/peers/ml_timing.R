#!/usr/bin/env Rscript
# Peer fit times for jaxsem's ML speed benchmark. Prints ONE JSON line to
# stdout (nothing else):
#   lavaan: sem(<tutorial model>, Demo.twolevel, cluster = "cluster", estimator = "ML")
#   lme4:   lmer(y ~ x + (x | c), random_slope_200x50.csv, REML = FALSE)
# For each: one warm-up fit, then the median of 5 timed fits
# (system.time elapsed, seconds; package loading and data reading excluded).
#
# Usage (from the repository root; any cwd works):
#   Rscript bench/peers/ml_timing.R
# Needs data/random_slope_200x50.csv (bench/peers/make_random_slope_csv.py).
# Takes a few seconds.

suppressPackageStartupMessages({
  library(lavaan)
  library(lme4)
  library(jsonlite)
})

get_script_dir <- function() {
  args <- commandArgs(trailingOnly = FALSE)
  f <- sub("^--file=", "", args[grep("^--file=", args)])
  if (length(f) == 1L) return(dirname(normalizePath(f)))
  getwd()
}
data_dir <- file.path(get_script_dir(), "data")
repeats <- 5L

demo <- read.csv(file.path(data_dir, "Demo.twolevel.csv"))
rs_csv <- file.path(data_dir, "random_slope_200x50.csv")
if (!file.exists(rs_csv)) {
  stop("missing ", rs_csv, ": run .venv/bin/python bench/peers/make_random_slope_csv.py first")
}
rs <- read.csv(rs_csv)
rs$c <- factor(rs$c)

tutorial <- "level: 1\n fw =~ y1 + y2 + y3\n fw ~ x1 + x2 + x3\n level: 2\n fb =~ y1 + y2 + y3\n fb ~ w1 + w2"

time_fits <- function(f) {
  warm <- f()  # warm-up, not timed
  times <- vapply(seq_len(repeats),
                  function(i) round(unname(system.time(f())[["elapsed"]]), 3), numeric(1))
  list(warm = warm, times = times)
}

lav <- time_fits(function()
  sem(tutorial, data = demo, cluster = "cluster", estimator = "ML"))
lmm <- time_fits(function()
  lmer(y ~ x + (x | c), data = rs, REML = FALSE))

out <- list(
  lavaan_tutorial_ml_seconds = median(lav$times),
  lavaan_tutorial_ml_seconds_all = lav$times,
  lavaan_tutorial_ml_converged = lavInspect(lav$warm, "converged"),
  lavaan_tutorial_ml_logl = unname(fitMeasures(lav$warm, "logl")),
  lme4_random_slope_seconds = median(lmm$times),
  lme4_random_slope_seconds_all = lmm$times,
  lme4_random_slope_logLik = as.numeric(logLik(lmm$warm)),
  repeats = repeats,
  warmup = 1L,
  lavaan_version = as.character(packageVersion("lavaan")),
  lme4_version = as.character(packageVersion("lme4")),
  r_version = R.version.string
)
cat(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null", na = "null"), "\n", sep = "")
