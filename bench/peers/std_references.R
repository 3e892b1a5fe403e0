#!/usr/bin/env Rscript
# Standardized ML estimates from lavaan (standardizedSolution(type = "std.all"),
# lavaan's equivalent of Mplus's STDYX, with delta-method SEs) for jaxsem's
# standardization: two-level tutorial SEM and path model, single-level CFA, all on
# lavaan's Demo.twolevel data, fitted as in ml_references.R (BFGS to reltol 1e-15,
# observed information). Outputs are consumed by jaxsem tests, which never need R.
#
# Regenerate (from the repository root; any cwd works):
#   apt-get update && apt-get install -y r-cran-lavaan r-cran-jsonlite
#   Rscript bench/peers/std_references.R
# Reads data/Demo.twolevel.csv; writes outputs/std_lavaan.json.

suppressPackageStartupMessages({
  library(lavaan)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = FALSE)
script <- sub("^--file=", "", args[grep("^--file=", args)])
here <- if (length(script) == 1L) dirname(normalizePath(script)) else getwd()
demo <- read.csv(file.path(here, "data", "Demo.twolevel.csv"))

models <- list(
  tutorial = list(
    model = "level: 1\n fw =~ y1 + y2 + y3\n fw ~ x1 + x2 + x3\n level: 2\n fb =~ y1 + y2 + y3\n fb ~ w1 + w2",
    cluster = "cluster"),
  path_mediation = list(
    model = "level: 1\n y1 ~ x1 + x2\n y2 ~ y1 + x3\n level: 2\n y1 ~ w1\n y2 ~ y1 + w2",
    cluster = "cluster"),
  single_level_cfa = list(model = "f =~ y1 + y2 + y3 + y4", cluster = NULL))

out <- list(lavaan_version = as.character(packageVersion("lavaan")),
            r_version = R.version.string,
            note = paste("standardizedSolution(fit, type = 'std.all') with lavaan's",
                         "defaults (cov.std = TRUE: residual covariances scaled by",
                         "residual variances); exogenous covariate rows are omitted"))
for (name in names(models)) {
  m <- models[[name]]
  fit <- sem(m$model, data = demo, cluster = m$cluster, meanstructure = TRUE,
             estimator = "ML", information = "observed", optim.method = "BFGS",
             control = list(reltol = 1e-15, maxit = 5000))
  # standardizedSolution's rows follow parTable's (no level column): align by position
  std <- standardizedSolution(fit, type = "std.all")
  pt <- parTable(fit)
  stopifnot(nrow(std) == length(pt$lhs), all(std$lhs == pt$lhs), all(std$op == pt$op),
            all(std$rhs == pt$rhs))
  keep <- pt$exo == 0 & pt$op %in% c("=~", "~", "~~", "~1")
  level <- if (is.null(pt$level)) rep(1L, length(pt$lhs)) else pt$level
  rows <- lapply(which(keep), function(i) {
    list(lhs = pt$lhs[i], op = pt$op[i], rhs = pt$rhs[i], level = level[i],
         est = pt$est[i], est_std = std$est.std[i],
         se = if (is.na(std$se[i])) NULL else std$se[i])
  })
  out[[name]] <- list(model = m$model, rows = rows)
  cat(name, ": ", length(rows), " rows\n", sep = "")
}
path <- file.path(here, "outputs", "std_lavaan.json")
write_json(out, path, digits = NA, auto_unbox = TRUE, pretty = TRUE, null = "null")
cat("wrote", path, "\n")
