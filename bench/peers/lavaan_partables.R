#!/usr/bin/env Rscript
# Reference lavaan parameter tables for two-level (and a few single-level)
# SEM models, fitted on lavaan's bundled Demo.twolevel data set with default
# options. Output is consumed by jaxsem tests (which never need R).
#
# Regenerate (from the repository root):
#   apt-get update && apt-get install -y r-cran-lavaan r-cran-jsonlite
#   Rscript bench/peers/lavaan_partables.R
#
# Writes bench/peers/outputs/lavaan_partables.json and
# bench/peers/data/Demo.twolevel.csv, paths relative to this script.

suppressPackageStartupMessages({
  library(lavaan)
  library(jsonlite)
})

get_script_dir <- function() {
  args <- commandArgs(trailingOnly = FALSE)
  f <- sub("^--file=", "", args[grep("^--file=", args)])
  if (length(f) == 1L) return(dirname(normalizePath(f)))
  getwd()
}
here <- get_script_dir()
out_dir <- file.path(here, "outputs")
data_dir <- file.path(here, "data")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
dir.create(data_dir, showWarnings = FALSE, recursive = TRUE)

data("Demo.twolevel", package = "lavaan")
write.csv(Demo.twolevel, file.path(data_dir, "Demo.twolevel.csv"),
          row.names = FALSE)

# name -> list(model, args); args are extra arguments to sem() besides data.
models <- list(
  tutorial = list(
    model = "level: 1\n fw =~ y1 + y2 + y3\n fw ~ x1 + x2 + x3\n level: 2\n fb =~ y1 + y2 + y3\n fb ~ w1 + w2",
    args = list(cluster = "cluster")),
  cfa_1f = list(
    model = "level: 1\n fw =~ y1 + y2 + y3\n level: 2\n fb =~ y1 + y2 + y3",
    args = list(cluster = "cluster")),
  cfa_equal_loadings = list(
    model = "level: 1\n fw =~ a*y1 + b*y2 + c*y3\n level: 2\n fb =~ a*y1 + b*y2 + c*y3",
    args = list(cluster = "cluster")),
  cfa_2f_w_1f_b_zero_resvar = list(
    model = "level: 1\n f1 =~ y1 + y2 + y3\n f2 =~ y4 + y5 + y6\n level: 2\n fb =~ y1 + y2 + y3 + y4 + y5 + y6\n y1 ~~ 0*y1",
    args = list(cluster = "cluster")),
  path_mediation = list(
    model = "level: 1\n y1 ~ x1 + x2\n y2 ~ y1 + x3\n level: 2\n y1 ~ w1\n y2 ~ y1 + w2",
    args = list(cluster = "cluster")),
  two_outcomes = list(
    model = "level: 1\n y1 + y2 ~ x1 + x2\n level: 2\n y1 + y2 ~ w1",
    args = list(cluster = "cluster")),
  stdlv_within = list(
    model = "level: 1\n fw =~ NA*y1 + y2 + y3\n fw ~~ 1*fw\n level: 2\n fb =~ y1 + y2 + y3",
    args = list(cluster = "cluster")),
  x_both_levels = list(
    model = "level: 1\n y1 ~ x1\n level: 2\n y1 ~ x1 + w1",
    args = list(cluster = "cluster")),
  saturated_between = list(
    model = "level: 1\n fw =~ y1 + y2 + y3\n level: 2\n y1 ~~ y2 + y3\n y2 ~~ y3",
    args = list(cluster = "cluster")),
  covariances_within = list(
    model = "level: 1\n fw =~ y1 + y2 + y3 + y4\n y1 ~~ y2\n level: 2\n fb =~ y1 + y2 + y3 + y4",
    args = list(cluster = "cluster")),
  single_level_cfa = list(
    model = "f1 =~ y1 + y2 + y3\n f2 =~ y4 + y5 + y6\n f2 ~ f1 + x1",
    args = list()),
  single_level_regression_fixedx = list(
    model = "y1 ~ x1 + x2 + x3",
    args = list()),
  single_level_regression_meanstructure = list(
    model = "y1 ~ x1 + x2 + x3",
    args = list(meanstructure = TRUE)),
  single_level_cfa_meanstructure = list(
    model = "f1 =~ y1 + y2 + y3\n f2 =~ y4 + y5 + y6\n f2 ~ f1 + x1",
    args = list(meanstructure = TRUE)),
  within_only_outcome = list(
    model = "level: 1\n y1 ~ x1\n y2 ~ x2\n level: 2\n y1 ~ w1",
    args = list(cluster = "cluster")),
  labels_and_definitions = list(
    model = "level: 1\n fw =~ y1 + l2*y2 + l3*y3\n level: 2\n fb =~ y1 + l2*y2 + l3*y3\n ratio := l2 / l3",
    args = list(cluster = "cluster"))
)

pt_columns <- c("id", "lhs", "op", "rhs", "block", "level", "free", "exo",
                "ustart", "label", "plabel", "est", "se")

partable_rows <- function(fit) {
  pt <- parTable(fit)
  for (col in pt_columns) {
    if (is.null(pt[[col]])) pt[[col]] <- rep(NA, length(pt$id))
  }
  pt <- as.data.frame(pt[pt_columns], stringsAsFactors = FALSE)
  # a list of row objects; NA (e.g. ustart of free parameters) -> JSON null
  lapply(seq_len(nrow(pt)), function(i) {
    row <- as.list(pt[i, , drop = FALSE])
    lapply(row, function(v) if (is.na(v)) NULL else unname(v))
  })
}

fit_one <- function(name, spec) {
  warnings_seen <- character(0)
  res <- tryCatch(
    withCallingHandlers({
      # sem() is called directly (not via do.call(sem, ...)): lavaan
      # inspects match.call() and fails on an anonymous function object.
      cl <- spec$args$cluster
      fit <- if (isTRUE(spec$args$meanstructure)) {
        sem(spec$model, data = Demo.twolevel, cluster = cl,
            meanstructure = TRUE)
      } else {
        sem(spec$model, data = Demo.twolevel, cluster = cl)
      }
      fm <- fitMeasures(fit, c("npar", "logl"))
      list(
        ok = TRUE,
        converged = lavInspect(fit, "converged"),
        npar = unname(as.integer(fm[["npar"]])),
        logl = unname(fm[["logl"]]),
        nobs = lavInspect(fit, "nobs"),
        partable = partable_rows(fit)
      )
    }, warning = function(w) {
      warnings_seen <<- c(warnings_seen, conditionMessage(w))
      invokeRestart("muffleWarning")
    }),
    error = function(e) list(ok = FALSE, error = conditionMessage(e))
  )
  c(list(model = spec$model,
         sem_args = c(list(data = "Demo.twolevel"), spec$args)),
    res,
    list(warnings = as.list(warnings_seen)))
}

results <- list(
  `_meta` = list(
    lavaan_version = as.character(packageVersion("lavaan")),
    r_version = R.version.string,
    data = "Demo.twolevel (lavaan package, GPL); copy in data/Demo.twolevel.csv",
    generated_by = "bench/peers/lavaan_partables.R",
    notes = "sem() with default options; two-level models use cluster = 'cluster'. NA values are written as null."
  )
)
for (nm in names(models)) {
  r <- fit_one(nm, models[[nm]])
  r$lavaan_version <- as.character(packageVersion("lavaan"))
  r$r_version <- R.version.string
  results[[nm]] <- r
  if (isTRUE(r$ok)) {
    cat(sprintf("%-40s npar=%3d  logl=%.6f  converged=%s\n",
                nm, r$npar, r$logl, r$converged))
  } else {
    cat(sprintf("%-40s ERROR: %s\n", nm, r$error))
  }
  if (length(r$warnings)) cat("   warnings:", unlist(r$warnings), sep = "\n    ")
}

write_json(results, file.path(out_dir, "lavaan_partables.json"),
           digits = NA, auto_unbox = TRUE, pretty = TRUE, null = "null",
           na = "null")
cat("wrote", file.path(out_dir, "lavaan_partables.json"), "\n")
