"""The SSL methods of Oliver et al. 2018, keyed by what `--method` accepts (spec §4).

Each method module exports per-example penalties, shape [B], which the
step masks to the unlabeled rows, divides by the whole batch B and weights (spec §3.1). They
need different inputs, so the step calls them by name, after its first pass
`logits = model(x, training=True)` on the pre-augmentation batch x:

    pi   pi_model.consistency(model, x, logits)
    mt   mean_teacher.consistency(teacher, x, logits); after each optimizer step,
         mean_teacher.update_teacher(teacher.trainable_variables, model.trainable_variables)
    vat  logits_adv = vat.adversarial_logits(model, x, logits, vat_epsilon, vat_xi, generator)
         vat.consistency(logits_adv, logits)
    em   (VAT + EntMin only) vat.entropy(logits_adv), weighted by β = 0.1, not ramped (§4.5)
    pl   pseudo_label.consistency(logits)

Every method also uses `supervised.cross_entropy(labels, logits)`; the fully supervised baseline
uses nothing else."""
