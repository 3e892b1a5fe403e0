#!/usr/bin/env Rscript
# Two-level factor scores from lavaan (lavPredict, method "EBM" = regression /
# empirical Bayes) for jaxsem's factor-score code: the two-level one-factor CFA
# on lavaan's Demo.twolevel data (plus two structural variants), fitted with ML
# as in ml_references.R (BFGS to reltol 1e-15, observed information).
# Outputs are consumed by jaxsem tests, which never need R.
#
# Regenerate (from the repository root; any cwd works):
#   apt-get update && apt-get install -y r-cran-lavaan r-cran-jsonlite
#   Rscript bench/peers/fscores_lavaan.R
# Reads data/Demo.twolevel.csv; writes outputs/fscores_lavaan.json.
#
# Each model's scores are also recomputed here by hand from the fitted model
# matrices (posterior means of the cluster-level components, then the
# single-level regression formula per level; see `notes`) on the data in file
# order; `check_max_abs_diff_*` is the largest difference from lavPredict and
# pins down the row and cluster order. lavaan 0.6.14 enters between-only
# variables as 0 in level-2 scores (fixed upstream in lavaan PR #292); models
# with such variables also get `between_scores_observed_z` (see `notes`).

suppressPackageStartupMessages({
  library(lavaan)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = FALSE)
script <- sub("^--file=", "", args[grep("^--file=", args)])
here <- if (length(script) == 1L) dirname(normalizePath(script)) else getwd()
out_dir <- file.path(here, "outputs")
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
demo <- read.csv(file.path(here, "data", "Demo.twolevel.csv"))

models <- list(
  cfa_1f = "level: 1\n fw =~ y1 + y2 + y3\n level: 2\n fb =~ y1 + y2 + y3",
  # lavaan's multilevel tutorial model: covariates at both levels
  tutorial = "level: 1\n fw =~ y1 + y2 + y3\n fw ~ x1 + x2 + x3\n level: 2\n fb =~ y1 + y2 + y3\n fb ~ w1 + w2",
  # between-only outcome w1 regressed on the between factor
  between_outcome = "level: 1\n fw =~ y1 + y2 + y3\n level: 2\n fb =~ y1 + y2 + y3\n w1 ~ fb")

# The exact calls used (also written to the JSON as `method`).
predict_w <- function(fit) lavPredict(fit, type = "lv", method = "EBM", level = 1L)
predict_b <- function(fit) lavPredict(fit, type = "lv", method = "EBM", level = 2L)
method_text <- paste(
  "lavPredict(fit, type = \"lv\", method = \"EBM\", level = 1L) for within_scores;",
  "lavPredict(fit, type = \"lv\", method = \"EBM\", level = 2L) for between_scores.",
  "EBM is lavaan's default (method = \"regression\" is an alias for it);",
  "se = \"none\", no newdata, complete data (missing = \"listwise\", no rows dropped).")

fit_model <- function(model) {
  sem(model, data = demo, cluster = "cluster", estimator = "ML",
      information = "observed", optim.method = "BFGS",
      control = list(reltol = 1e-15, maxit = 5000))
}

estimates <- function(fit) {
  pe <- parameterEstimates(fit, remove.nonfree = TRUE, ci = FALSE, zstat = FALSE,
                           pvalue = FALSE)
  lapply(seq_len(nrow(pe)), function(i) {
    list(lhs = pe$lhs[i], op = pe$op[i], rhs = pe$rhs[i],
         block = as.integer(pe$block[i]), level = as.integer(pe$level[i]),
         est = pe$est[i], se = pe$se[i])
  })
}

# Hand recomputation of the EBM scores for complete data, with every observed
# variable of the model either within+between ("both": y), within-only (x) or
# between-only (z). Uses the model-implied moments (lavInspect "implied") and
# the LISREL matrices (lavInspect "est") of each level; factors are the
# non-dummy latent variables.
manual_scores <- function(fit, zero_z = TRUE) {
  est <- lavInspect(fit, "est")
  imp <- lavInspect(fit, "implied")
  W <- est[["within"]]; B <- est[["cluster"]]
  SW <- imp[["within"]]$cov; SB <- imp[["cluster"]]$cov
  MW <- imp[["within"]]$mean; MB <- imp[["cluster"]]$mean
  ovw <- rownames(SW); ovb <- rownames(SB)
  zv <- setdiff(ovb, ovw)                           # between-only variables
  cl <- demo$cluster
  ids <- unique(cl)                                 # lavaan's cluster order
  idx <- match(cl, ids)
  nj <- tabulate(idx)
  # cluster means of all within-level variables (both-level and within-only)
  Ybar <- rowsum(as.matrix(demo[, ovw]), idx, reorder = FALSE) / nj
  Z <- as.matrix(demo[match(ids, cl), zv, drop = FALSE])
  # between covariance and mean of the within-level variables, zero for
  # within-only ones (as lav_mvnorm_cluster_implied22l)
  Sb_y <- matrix(0, length(ovw), length(ovw), dimnames = list(ovw, ovw))
  bo <- intersect(ovw, ovb); Sb_y[bo, bo] <- SB[bo, bo]
  Syz <- matrix(0, length(ovw), length(zv), dimnames = list(ovw, zv))
  Syz[bo, ] <- SB[bo, zv]
  Szz <- SB[zv, zv, drop = FALSE]
  mu_b <- setNames(rep(0, length(ovw)), ovw); mu_b[bo] <- MB[bo]
  mu_w <- MW[ovw]; mu_z <- MB[zv]
  # posterior mean of the between part of the within-level variables given the
  # cluster's data (z_j, ybar_j)
  Bhat <- matrix(NA_real_, length(ids), length(ovw), dimnames = list(NULL, ovw))
  for (j in seq_along(ids)) {
    Om <- rbind(cbind(Szz, t(Syz)), cbind(Syz, Sb_y + SW[ovw, ovw] / nj[j]))
    d <- c(Z[j, ] - mu_z, Ybar[j, ] - mu_b - mu_w)
    Bhat[j, ] <- mu_b + cbind(Syz, Sb_y) %*% solve(Om, d)
  }
  # level-specific regression scores: E[eta] + VETA Lambda' Sigma^-1 (v - E[v])
  reg <- function(M, S, Mu, V) {
    lam <- M$lambda; lv <- colnames(lam)
    IB <- solve(diag(length(lv)) - (if (is.null(M$beta)) 0 * diag(length(lv)) else M$beta))
    veta <- IB %*% M$psi %*% t(IB)
    alpha <- if (is.null(M$alpha)) rep(0, length(lv)) else as.numeric(M$alpha)
    eeta <- as.numeric(IB %*% alpha)
    ov <- rownames(lam)
    Vc <- sweep(V[, ov, drop = FALSE], 2, Mu[ov])
    fs <- sweep(Vc %*% t(veta %*% t(lam) %*% solve(S[ov, ov])), 2, eeta, "+")
    colnames(fs) <- lv
    fs
  }
  # level 1: within data y_ij - Bhat_j (Bhat_j is 0 for within-only variables)
  Vw <- as.matrix(demo[, ovw, drop = FALSE]) - Bhat[idx, ovw, drop = FALSE]
  # level 2: (z_j, Bhat_j); z_j = observed between-only values or zero
  Vb <- cbind(if (zero_z) 0 * Z else Z, Bhat[, bo, drop = FALSE])[, ovb, drop = FALSE]
  list(within = reg(W, SW, MW, Vw), between = reg(B, SB, MB, Vb), cluster_id = ids)
}

notes <- paste(
  "How lavaan 0.6.14 defines two-level factor scores (lavPredict -> lav_predict_eta",
  "-> lav_predict_eta_normal, all-numeric data, method EBM):",
  "(1) lav_mvnorm_cluster_em_estep_ranef computes for every cluster j the empirical-Bayes",
  "(posterior mean) estimate of the between-level component of the observed variables,",
  "MB_j = mu_b + [Sigma_yz, Sigma_b] Omega_j^-1 ((z_j, ybar_j) - (mu_z, mu_w + mu_b)),",
  "Omega_j = [[Sigma_zz, Sigma_zy], [Sigma_yz, Sigma_b + Sigma_w / n_j]], at the ML estimates",
  "(z_j: between-only variables; ybar_j: cluster means; n_j: cluster size).",
  "(2) level = 1: the within data are y_ij - MB_j (the level-1 scores thus use the level-2",
  "EB values), and the scores are the single-level regression scores",
  "E[eta_w] + VETA_w Lambda_w' Sigma_w^-1 (y_ij - MB_j - E[y_w]) with the within-level",
  "implied covariance Sigma_w. (3) level = 2: the data are (z_j, MB_j), and the scores are",
  "E[eta_b] + VETA_b Lambda_b' Sigma_b^-1 ((z_j, MB_j) - E[y_b]) with the between-level",
  "implied moments. Because each level's factor depends on the data only through that",
  "level's component, whose posterior mean is linear, these are the exact posterior means",
  "E[eta | all data of the cluster] under the fitted normal model (ML estimates plugged in,",
  "no parameter uncertainty); for cfa_1f this was also confirmed against a brute-force",
  "joint-normal posterior mean over a whole cluster (differences about 1e-15).",
  "Caveat (lavaan 0.6.14 bug): the level-2 data matrix is built as",
  "Data.B <- matrix(0, ...); Data.B[, ov.idx[[1]]] <- MB.j, so between-only variables",
  "(z_j: w1, w2 in other_models) enter the level-2 scores as 0, not their observed values",
  "(the EB step MB_j does use the observed z_j). lavaan PR #292 (merged 2023-08-27, after",
  "0.6.14) fills in the observed values. The top-level cfa_1f has no between-only variables",
  "and is unaffected; for other_models, between_scores is what 0.6.14 returns and",
  "between_scores_observed_z the corrected scores (this script's recomputation with the",
  "observed z_j), which are the exact posterior means.",
  "Exogenous covariates (fixed.x = TRUE) enter as observed 'dummy' latent variables,",
  "which lavPredict drops from its output. Rows of within_scores follow the data's row",
  "order (lavdata@X); rows of between_scores follow lavaan's cluster order, which is",
  "unique(cluster) in data order (lav_data_cluster_patterns: cluster.id <- unique(CLUS);",
  "lavInspect(fit, 'cluster.id')). In Demo.twolevel that is 1, 2, ..., 200.",
  "check_max_abs_diff_* compare lavPredict with a recomputation in this script from",
  "lavInspect(fit, 'est') / 'implied' and the data in file order.")

one_model <- function(model) {
  fit <- fit_model(model)
  fw <- predict_w(fit); fb <- predict_b(fit)
  cid <- lavInspect(fit, "cluster.id")
  if (is.list(cid)) cid <- cid[[1]]
  stopifnot(nrow(fw) == nrow(demo), nrow(fb) == length(cid))
  man <- manual_scores(fit, zero_z = TRUE)     # reproduces lavaan 0.6.14
  stopifnot(identical(as.numeric(cid), as.numeric(man$cluster_id)))
  dw <- max(abs(fw - man$within[, colnames(fw), drop = FALSE]))
  db <- max(abs(fb - man$between[, colnames(fb), drop = FALSE]))
  stopifnot(dw < 1e-10, db < 1e-10)
  col1 <- function(M) if (ncol(M) == 1L) unname(M[, 1]) else
    lapply(setNames(colnames(M), colnames(M)), function(f) unname(M[, f]))
  zv <- setdiff(lavNames(fit, "ov", level = 2L), lavNames(fit, "ov", level = 1L))
  res <- list(model = model,
              converged = lavInspect(fit, "converged"),
              logl = unname(fitMeasures(fit, "logl")),
              n_obs = lavInspect(fit, "nobs"),
              n_clusters = length(cid),
              between_only_variables = as.list(zv),
              estimates = estimates(fit),
              within_factors = as.list(colnames(fw)),
              between_factors = as.list(colnames(fb)),
              within_scores = col1(fw),
              between_scores = col1(fb),
              between_cluster_id = as.numeric(cid),
              check_max_abs_diff_within = dw,
              check_max_abs_diff_between = db)
  if (length(zv)) {
    # lavaan 0.6.14 sets between-only variables to 0 in the level-2 scores
    # (fixed in lavaan PR #292, 0.6-16); the scores with their observed values:
    fix <- manual_scores(fit, zero_z = FALSE)$between[, colnames(fb), drop = FALSE]
    res$between_scores_observed_z <- col1(fix)
    res$between_scores_observed_z_max_abs_diff <- max(abs(fix - fb))
  }
  res
}

main <- one_model(models$cfa_1f)
out <- c(list(lavaan_version = as.character(packageVersion("lavaan")),
              r_version = R.version.string,
              data = "data/Demo.twolevel.csv",
              sem_args = paste("sem(model, data, cluster = \"cluster\", estimator = \"ML\",",
                               "information = \"observed\", optim.method = \"BFGS\",",
                               "control = list(reltol = 1e-15, maxit = 5000));",
                               "other options at lavaan's defaults"),
              method = method_text,
              cluster_order = paste("between_scores[k] belongs to cluster between_cluster_id[k];",
                                    "lavaan's order = unique(cluster) in data row order",
                                    "(lavInspect(fit, 'cluster.id')), here 1..200 ascending"),
              row_order = "within_scores[i] belongs to row i of data/Demo.twolevel.csv",
              notes = notes),
         main)
out$other_models <- lapply(models[c("tutorial", "between_outcome")], one_model)

path <- file.path(out_dir, "fscores_lavaan.json")
write_json(out, path, digits = NA, auto_unbox = TRUE, pretty = TRUE,
           null = "null", na = "null")
cat("wrote", path, "\n")
